// Runs the example filter's own tests (examples/filters/api-key) under
// `npm test`, which only collects files below test/.
import '../../examples/filters/api-key/api-key.test.ts';
