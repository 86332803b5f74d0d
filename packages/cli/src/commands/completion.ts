// sheesh completion bash|zsh: a completion script for the shell (eval "$(sheesh completion bash)").
import { UsageError, type Command } from '../command.ts'

const WORDS = 'vm exec shell run-ts run-js cp snapshot template logs image completion mcp'
const VM_VERBS = 'create ls get rm start stop pause resume extend url'

export const completion: Command = {
  name: 'completion',
  usage: 'sheesh completion <bash|zsh>',
  summary: 'Print a shell completion script',
  async run(args, _values, _client, out) {
    const bash = `_sheesh() {
  local cur=\${COMP_WORDS[COMP_CWORD]}
  if [ "$COMP_CWORD" -eq 1 ]; then COMPREPLY=( $(compgen -W "${WORDS}" -- "$cur") )
  elif [ "\${COMP_WORDS[1]}" = vm ] && [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=( $(compgen -W "${VM_VERBS}" -- "$cur") )
  elif [ "\${COMP_WORDS[1]}" = template ] && [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=( $(compgen -W "ls get create rm spawn" -- "$cur") )
  elif [ "\${COMP_WORDS[1]}" = image ] && [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=( $(compgen -W "ls default rm upload build" -- "$cur") )
  else COMPREPLY=( $(compgen -f -- "$cur") ); fi
}
complete -F _sheesh sheesh`
    if (args[0] === 'bash') return out(bash)
    // zsh runs bash completion functions through bashcompinit.
    if (args[0] === 'zsh') return out(`autoload -U +X bashcompinit && bashcompinit\n${bash}`)
    throw new UsageError('give bash or zsh')
  },
}
