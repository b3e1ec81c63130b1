// The query schema of a route that defines no query parameter. Writes use it
// so that a parameter the route does not have (`?dryRun=true` on a rollback or
// a manifest delete; only /apply has a dry run) is a 400 naming it
// (`query.dryRun: unknown field`), as on the routes with query parameters,
// instead of being ignored while the write goes ahead.
import { Type } from '@sinclair/typebox';

export const NoQuery = Type.Object({}, { additionalProperties: false });
