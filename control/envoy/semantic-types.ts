import type { FieldError } from './errors.ts';

/** Whether a message type is one of the loaded protos. */
export type Loaded = (fullName: string) => boolean;

/** A check run on one message's JSON after its fields were read. */
export type SemanticCheck = (json: Record<string, unknown>, path: string, errors: FieldError[], loaded: Loaded) => void;
