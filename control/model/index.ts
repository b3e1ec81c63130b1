// The model's public surface: domain types, schemas (for fastify and
// OpenAPI), validators, manifests, cross-reference checks.
export type * from './types.ts';
export { ok, fail, joinPath, prefixErrors, type FieldError, type Result } from './result.ts';
export { DEFAULT_NAMESPACE } from './fields.ts';
export { defineKind, type Kind, type KindDefinition, type ObjectMeta } from './kind.ts';
export { registerKind, kindNamed, kindNames } from './kinds.ts';
export { serviceKind, ServiceSchema, ServiceSpecSchema, ServicePortSchema, validateService, PROTOCOLS } from './service.ts';
export { InstanceRegistrationSchema, validateInstanceRegistration, INSTANCE_HEALTH, type InstanceRegistration } from './instance.ts';
export { routeKind, RouteSchema, RouteSpecSchema, validateRoute } from './route.ts';
export { RETRY_ON, DEFAULT_RETRY_ON } from './route-actions.ts';
export { HTTP_METHODS } from './route-match.ts';
export { destinationPolicyKind, DestinationPolicySchema, DestinationPolicySpecSchema, validateDestinationPolicy, OUTLIER_DEFAULTS } from './destination-policy.ts';
export { filterBindingKind, FilterBindingSchema, FilterBindingSpecSchema, validateFilterBinding } from './filter-binding.ts';
export { HealthCheckSchema, HEALTH_CHECK_DEFAULTS } from './health-check.ts';
export { API_VERSION, ManifestSchema, parseManifests, validateManifest, type Manifest } from './manifest.ts';
export { checkReferences, resolveServiceRef, type DesiredState, type ReferenceError } from './references.ts';
export { peerAuthenticationKind, PeerAuthenticationSchema, validatePeerAuthentication, PEER_AUTHENTICATION_MODES, DEFAULT_PEER_AUTHENTICATION_MODE } from './peer-authentication.ts';
export { authorizationPolicyKind, AuthorizationPolicySchema, validateAuthorizationPolicy } from './authorization-policy.ts';
