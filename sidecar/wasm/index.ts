// Public entry of the proxy-wasm host: what the weft sidecar and filter
// tests import. Everything else in this folder is internal.

export { WasmPlugin, type PluginConfig, type HostEnv, type LogEntry, type FailurePolicy } from './plugin.ts';
export type { HttpStream, StreamOutcome, BodyOutcome } from './stream.ts';
export type { LocalReply, HttpCallDispatcher, HttpCallRequest, HttpCallResponse, GrpcStreamDispatcher, GrpcStreamRequest, GrpcStreamEvents, GrpcStreamHandle } from './context.ts';
export type { HeaderPairs } from './headers.ts';
export type { StreamProperties, PropertyValue } from './properties.ts';
export { filterStateIfSet } from './properties.ts';
export type { Metric, MetricKind } from './metrics.ts';
export { MetricStore } from './metrics.ts';
export { SharedState } from './shared.ts';
export { WasmLoadError } from './abi-version.ts';
export { WasmResult, LogLevel, MapType, BufferType, StreamType, MetricType, HeadersStatus, DataStatus, supportedAbiVersions, type AbiVersion, type LogLevelName } from './abi.ts';
