// Numbers for the bench scripts: percentiles, formatting, process memory and timing.
import fs from 'node:fs'

export const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!
}
export const median = (xs: number[]): number => pct(xs, 50)
export const ms = (n: number): string => `${n.toFixed(n < 10 ? 1 : 0)} ms`

/** Resident and proportional set size of a process (PSS splits shared pages among their users). */
export function memOf(pid: number): { rssMb: number; pssMb: number } {
  const txt = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(txt)?.[1] ?? 0)
  return { rssMb: kb('Rss') / 1024, pssMb: kb('Pss') / 1024 }
}

export async function timeIt<T>(f: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now()
  const v = await f()
  return [performance.now() - t, v]
}
