// Progress of a long build for a terminal or a CI log: a line per step change or per 5 %, so a
// long compile or debootstrap stays readable.
import type { BuildProgress } from '../guest/image/src/index.ts';

export function progressLines(print: (line: string) => void = console.log): (p: BuildProgress) => void {
  let lastStep = '';
  let lastPercent = -5;
  return (p) => {
    if (p.step === lastStep && p.percent < lastPercent + 5) return;
    lastStep = p.step;
    lastPercent = p.percent;
    print(`[${String(p.percent).padStart(3)}%] (${p.index}/${p.total}) ${p.step}${p.detail ? `: ${p.detail}` : ''}`);
  };
}
