import { z } from 'zod';

export const k8sAttributesConfig = z.strictObject({
  pod_labels: z
    .array(z.string().min(1, 'a label key must not be empty'))
    .default([])
    .describe(
      'Pod label keys to copy onto flows, as `src.k8s.pod.label.<key>` and `dst.k8s.pod.label.<key>` (an allow-list: every label would multiply series downstream).',
    ),
});

export type K8sAttributesConfig = z.output<typeof k8sAttributesConfig>;
