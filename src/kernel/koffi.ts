/**
 * koffi, the FFI package both kernel backends bind libc through, loaded on first use so that
 * importing a backend costs nothing on a system where it is not used.
 */
import { createRequire } from 'node:module';

export type Koffi = typeof import('koffi').default;

let koffiModule: Koffi | undefined;

/** koffi; purpose names what needs it ("the FreeBSD backend") in the error when it is missing. */
export function loadKoffi(purpose: string): Koffi {
  if (!koffiModule) {
    try {
      koffiModule = createRequire(import.meta.url)('koffi') as Koffi;
    } catch (e) {
      throw new Error(`${purpose} needs the koffi package (npm install): ${(e as Error).message}`);
    }
  }
  return koffiModule;
}

export type Fn = (...args: unknown[]) => unknown;

/** Resolves a symbol or explains which library lacks it. */
export function bind(lib: ReturnType<Koffi['load']>, path: string, envVar: string, decl: string): Fn {
  try {
    return lib.func(decl) as Fn;
  } catch (e) {
    throw new Error(`"${path}" does not provide \`${decl}\` (${(e as Error).message}); ${envVar} selects the library`);
  }
}
