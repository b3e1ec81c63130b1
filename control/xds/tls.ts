// TLS for the ADS server (weft control --xds-tls). grpc-js 1.14 lets a
// running server take a new secure context: ServerCredentials tell their
// watchers (the http2 server each bound port made, which calls
// setSecureContext) about new context options. So the certificate is
// renewed in place: connections made after a renewal get the new one, open
// streams keep their session, and nothing restarts.
import * as grpc from '@grpc/grpc-js';

export interface CertificateAndKey {
  certificateChainPem: string;
  privateKeyPem: string;
}

export class RotatingServerCredentials extends grpc.ServerCredentials {
  constructor(initial: CertificateAndKey) {
    // No client certificate: proxies authenticate with their join token (docs/identity.md).
    super({ requestCert: false }, RotatingServerCredentials.#context(initial));
  }

  static #context(c: CertificateAndKey) {
    return { cert: [Buffer.from(c.certificateChainPem)], key: [Buffer.from(c.privateKeyPem)] };
  }

  /** Every bound port serves `next` to the connections that come after. */
  update(next: CertificateAndKey): void {
    this.updateSecureContextOptions(RotatingServerCredentials.#context(next));
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}
