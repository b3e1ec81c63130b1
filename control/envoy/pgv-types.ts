import type { FieldError } from './errors.ts';

/** A compiled rule: checks one already-decoded value, appends errors at `path`. */
export type Check = (value: unknown, path: string, errors: FieldError[]) => void;

/** One rule message of validate.proto as protobufjs parses it from the options. */
export type RuleSet = Record<string, unknown>;

/** The `(validate.rules)` of one field: a type key (string, uint32, repeated, ...) and/or `message`. */
export type FieldRules = Record<string, RuleSet | undefined>;
