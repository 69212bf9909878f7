/** Running the built CLI (dist/src/cli/main.js) from tests; in CI (CI=true) a missing build fails the run. */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { present } from './shared.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
export const HAVE_CLI = present(existsSync(MAIN), `the build ${MAIN} (npm run build)`, 'the CLI tests');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `file args` to its end and collects its output (stdin: `input`, or nothing); never rejects once started.
 * `cwd` defaults to the repository, `env` adds to this process's environment.
 */
export function runProgram(
  file: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** Runs `attnviz …args` (in `cwd`, default the repository); never rejects. */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}, cwd = ROOT): Promise<CliResult> {
  return runProgram(process.execPath, [MAIN, ...args], { env, cwd });
}

/** Exit 2, exactly one stderr line `attnviz: …` matching every key, no stack trace, nothing on stdout. */
export function expectCliError(r: CliResult, ...keys: (string | RegExp)[]): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr.endsWith('\n'), JSON.stringify(r.stderr)).toBe(true);
  const lines = r.stderr.slice(0, -1).split('\n');
  expect(lines, 'one line on stderr').toHaveLength(1);
  expect(lines[0].startsWith('attnviz: '), lines[0]).toBe(true);
  expect(r.stderr).not.toContain('    at ');
  for (const key of keys) expect(lines[0]).toMatch(key);
}
