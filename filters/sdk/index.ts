// weft's proxy-wasm SDK for AssemblyScript 0.28, ABI 0.2.1. A filter imports
// from here and re-exports './exports' from its entry file.

export * from './status';
export * from './log';
export * from './headers';
export * from './host';
export * from './metrics';
export * from './context';
export * from './json';
export * from './config';
export * from './encoding';
export * from './sha256';
export * from './random';
export * from './ascii';
