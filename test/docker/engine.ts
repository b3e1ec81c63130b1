// Is a Docker engine reachable? Answered without loading testcontainers when
// no socket or DOCKER_HOST exists (the common case on our build machines), so
// the suite's skip costs nothing; otherwise testcontainers' own client decides,
// within a bound.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export type Engine = { available: true } | { available: false; reason: string };

function candidates(): string[] {
  const out = ['/var/run/docker.sock', join(homedir(), '.docker', 'run', 'docker.sock'), join(homedir(), '.testcontainers.properties')];
  if (process.env.XDG_RUNTIME_DIR) out.push(join(process.env.XDG_RUNTIME_DIR, 'docker.sock'));
  return out;
}

export async function detectEngine(timeoutMs = 20_000): Promise<Engine> {
  if (!process.env.DOCKER_HOST && !candidates().some((p) => existsSync(p))) {
    return { available: false, reason: 'no Docker engine: DOCKER_HOST is unset and no docker.sock exists' };
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await Promise.race([
      getContainerRuntimeClient(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { available: true };
  } catch (err) {
    return { available: false, reason: `no Docker engine: ${(err as Error).message.split('\n')[0]}` };
  } finally {
    clearTimeout(timer);
  }
}
