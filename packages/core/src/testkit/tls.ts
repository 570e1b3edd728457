import { fileURLToPath } from 'node:url';

/**
 * The project's TLS test material (see tls/README.md): a CA, a server certificate for 127.0.0.1 and
 * localhost, and a client certificate. Resolved to the source folder from src/ and dist/ alike, since the
 * PEM files are not built.
 */
export const TEST_TLS_DIR = fileURLToPath(new URL('../../src/testkit/tls/', import.meta.url));
