// SDS Secrets for one workload identity: its certificate and key ("default")
// and the mesh trust bundle ("ROOTCA"), named as Istio names them so Envoy
// configs read the same. Pure: the CA hands in the PEMs; the xDS server
// serves them only to proxies of that identity.

import type { EnvoyResource } from './index.ts';
import type { Json } from './envoy-json.ts';
import { adsConfigSource } from './envoy-json.ts';

export const WORKLOAD_SECRET = 'default';
export const TRUST_BUNDLE_SECRET = 'ROOTCA';

export interface SecretMaterial {
  /** Leaf first, then intermediates. */
  certificateChainPem: string;
  privateKeyPem: string;
  trustBundlePem: string;
}

export function sdsSecrets(material: SecretMaterial): EnvoyResource[] {
  return [
    {
      name: TRUST_BUNDLE_SECRET,
      value: { name: TRUST_BUNDLE_SECRET, validation_context: { trusted_ca: { inline_string: material.trustBundlePem } } },
    },
    {
      name: WORKLOAD_SECRET,
      value: {
        name: WORKLOAD_SECRET,
        tls_certificate: {
          certificate_chain: { inline_string: material.certificateChainPem },
          private_key: { inline_string: material.privateKeyPem },
        },
      },
    },
  ];
}

/** The workload certificate, fetched over SDS on the ADS stream. */
export function workloadCertificateRef(): Json {
  return { name: WORKLOAD_SECRET, sds_config: adsConfigSource() };
}

/** The trust bundle, fetched over SDS on the ADS stream. */
export function trustBundleRef(): Json {
  return { name: TRUST_BUNDLE_SECRET, sds_config: adsConfigSource() };
}
