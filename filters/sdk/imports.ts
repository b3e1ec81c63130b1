// Host functions of proxy-wasm ABI 0.2.1 (proxy-wasm/spec abi-versions/v0.2.1),
// imported from "env" exactly as Envoy's proxy-wasm-cpp-host registers them.
// Only what the SDK wraps is declared: an unused declaration is never imported.
// Every call returns a WasmResult code; the SDK turns codes into values.

// @ts-ignore: decorator
@external("env", "proxy_log")
export declare function proxy_log(level: i32, message: usize, size: usize): i32;
// @ts-ignore: decorator
@external("env", "proxy_get_log_level")
export declare function proxy_get_log_level(returnLevel: usize): i32;
// @ts-ignore: decorator
@external("env", "proxy_get_current_time_nanoseconds")
export declare function proxy_get_current_time_nanoseconds(returnTime: usize): i32;
// @ts-ignore: decorator
@external("env", "proxy_set_tick_period_milliseconds")
export declare function proxy_set_tick_period_milliseconds(period: u32): i32;

// @ts-ignore: decorator
@external("env", "proxy_get_buffer_bytes")
export declare function proxy_get_buffer_bytes(bufferType: i32, start: usize, maxSize: usize, returnData: usize, returnSize: usize): i32;
// @ts-ignore: decorator
@external("env", "proxy_set_buffer_bytes")
export declare function proxy_set_buffer_bytes(bufferType: i32, start: usize, size: usize, data: usize, dataSize: usize): i32;

// @ts-ignore: decorator
@external("env", "proxy_get_header_map_pairs")
export declare function proxy_get_header_map_pairs(mapType: i32, returnData: usize, returnSize: usize): i32;
// @ts-ignore: decorator
@external("env", "proxy_set_header_map_pairs")
export declare function proxy_set_header_map_pairs(mapType: i32, data: usize, size: usize): i32;
// @ts-ignore: decorator
@external("env", "proxy_get_header_map_value")
export declare function proxy_get_header_map_value(mapType: i32, key: usize, keySize: usize, returnData: usize, returnSize: usize): i32;
// @ts-ignore: decorator
@external("env", "proxy_add_header_map_value")
export declare function proxy_add_header_map_value(mapType: i32, key: usize, keySize: usize, value: usize, valueSize: usize): i32;
// @ts-ignore: decorator
@external("env", "proxy_replace_header_map_value")
export declare function proxy_replace_header_map_value(mapType: i32, key: usize, keySize: usize, value: usize, valueSize: usize): i32;
// @ts-ignore: decorator
@external("env", "proxy_remove_header_map_value")
export declare function proxy_remove_header_map_value(mapType: i32, key: usize, keySize: usize): i32;

// @ts-ignore: decorator
@external("env", "proxy_get_property")
export declare function proxy_get_property(path: usize, pathSize: usize, returnData: usize, returnSize: usize): i32;
// @ts-ignore: decorator
@external("env", "proxy_set_property")
export declare function proxy_set_property(path: usize, pathSize: usize, value: usize, valueSize: usize): i32;

// @ts-ignore: decorator
@external("env", "proxy_send_local_response")
export declare function proxy_send_local_response(statusCode: u32, details: usize, detailsSize: usize, body: usize, bodySize: usize, headers: usize, headersSize: usize, grpcStatus: i32): i32;
// @ts-ignore: decorator
@external("env", "proxy_continue_stream")
export declare function proxy_continue_stream(streamType: i32): i32;
// @ts-ignore: decorator
@external("env", "proxy_http_call")
export declare function proxy_http_call(upstream: usize, upstreamSize: usize, headers: usize, headersSize: usize, body: usize, bodySize: usize, trailers: usize, trailersSize: usize, timeoutMs: u32, returnToken: usize): i32;
// @ts-ignore: decorator
@external("env", "proxy_grpc_call")
export declare function proxy_grpc_call(service: usize, serviceSize: usize, serviceName: usize, serviceNameSize: usize, method: usize, methodSize: usize, initialMetadata: usize, initialMetadataSize: usize, message: usize, messageSize: usize, timeoutMs: u32, returnToken: usize): i32;
// @ts-ignore: decorator
@external("env", "proxy_grpc_cancel")
export declare function proxy_grpc_cancel(token: u32): i32;
// @ts-ignore: decorator
@external("env", "proxy_get_status")
export declare function proxy_get_status(returnCode: usize, returnMessage: usize, returnMessageSize: usize): i32;

// @ts-ignore: decorator
@external("env", "proxy_set_effective_context")
export declare function proxy_set_effective_context(contextId: u32): i32;

// @ts-ignore: decorator
@external("env", "proxy_define_metric")
export declare function proxy_define_metric(metricType: i32, name: usize, nameSize: usize, returnId: usize): i32;
// @ts-ignore: decorator
@external("env", "proxy_increment_metric")
export declare function proxy_increment_metric(metricId: u32, offset: i64): i32;
// @ts-ignore: decorator
@external("env", "proxy_record_metric")
export declare function proxy_record_metric(metricId: u32, value: u64): i32;
// @ts-ignore: decorator
@external("env", "proxy_get_metric")
export declare function proxy_get_metric(metricId: u32, returnValue: usize): i32;

// @ts-ignore: decorator
@external("env", "proxy_get_shared_data")
export declare function proxy_get_shared_data(key: usize, keySize: usize, returnData: usize, returnSize: usize, returnCas: usize): i32;
// @ts-ignore: decorator
@external("env", "proxy_set_shared_data")
export declare function proxy_set_shared_data(key: usize, keySize: usize, value: usize, valueSize: usize, cas: u32): i32;
// @ts-ignore: decorator
@external("env", "proxy_grpc_stream")
export declare function proxy_grpc_stream(service: usize, serviceSize: usize, serviceName: usize, serviceNameSize: usize, method: usize, methodSize: usize, initialMetadata: usize, initialMetadataSize: usize, returnToken: usize): i32;
// @ts-ignore: decorator
@external("env", "proxy_grpc_send")
export declare function proxy_grpc_send(token: u32, message: usize, messageSize: usize, endStream: u32): i32;
// @ts-ignore: decorator
@external("env", "proxy_grpc_close")
export declare function proxy_grpc_close(token: u32): i32;
