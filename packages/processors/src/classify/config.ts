import { cidr } from '@netmon/core';
import { z } from 'zod';
import { TRAFFIC_CLASSES } from './classes.js';
import { CLOUD_PROVIDERS, DEFAULT_PATTERNS } from './patterns.js';

const trafficClass = z.enum(TRAFFIC_CLASSES);

const cloudProvider = z.enum(CLOUD_PROVIDERS, {
  error: (issue) =>
    `${JSON.stringify(issue.input)} is not a provider a pattern can belong to; expected ${CLOUD_PROVIDERS.join(', ')}`,
});

/** `${env:X:-}` gives '': an empty value is an unset key, so a config can leave it to the environment. */
const unsetWhenEmpty = (v: unknown) => (v === '' ? undefined : v);

const rule = z
  .strictObject({
    name: z.string().optional().describe('A name for logs and docs.'),
    cidrs: z.array(cidr()).min(1, 'a rule needs at least one CIDR').describe('Addresses the rule is about.'),
    class: trafficClass
      .optional()
      .describe('The class of every flow with an end in these CIDRs (direct classification).'),
    zone: z
      .string()
      .min(1)
      .optional()
      .describe('Zone these addresses are in; the class follows from both ends.'),
    region: z.string().min(1).optional().describe('Region these addresses are in.'),
  })
  .refine((r) => r.class !== undefined || r.zone !== undefined || r.region !== undefined, {
    message: 'a rule sets `class`, or places its CIDRs with `zone` and/or `region`',
  });

const pattern = z.strictObject({
  class: trafficClass.describe('The class of flows to these destinations.'),
  cidrs: z.array(cidr()).default([]).describe('Addresses or CIDRs.'),
  domains: z
    .array(z.string().min(1))
    .default([])
    .describe('DNS names; `*` matches any run of characters, dots included.'),
  // One name or a list; a list inside, so the processor reads one shape.
  provider: z
    .preprocess(
      (v) => (typeof v === 'string' ? [v] : v),
      z.array(cloudProvider).min(1, 'name at least one provider, or leave the key out').optional(),
    )
    .describe(
      "The cloud(s) these destinations belong to (aws, gcp, azure, or a list): the pattern applies only while the cluster's provider is one of them, and not while it is unknown. Leave it out for a pattern that applies on every cluster.",
    ),
});

export const classifyConfig = z.strictObject({
  provider: z
    .preprocess(
      unsetWhenEmpty,
      z
        .enum([...CLOUD_PROVIDERS, 'none'], {
          error: (issue) =>
            `${JSON.stringify(issue.input)} is not a provider; expected aws, gcp, azure or none`,
        })
        .optional(),
    )
    .describe(
      "The cloud this cluster runs on (aws, gcp, azure, or none for no cloud), which decides which provider-specific patterns apply (a cloud's own API, control-plane, load-balancer and private-endpoint names and addresses are cloud_api, … only on that cloud; elsewhere they are classed by address, a public one as internet_egress). Set, it wins over the nodes (as cost's provider does). Unset or empty: the k8s_metadata extension's most common node provider (nodes' spec.providerID), asked again whenever the nodes change. While neither says, no provider-specific pattern applies (never a free cloud_api for another cloud's endpoint), and /status says so.",
    ),
  rules: z
    .array(rule)
    .default([])
    .describe(
      "Your own classification, checked before anything else but traffic between two of this host's own addresses, which is always same_node (Kubecost's direct classification): CIDRs with a class, or with the zone/region they are in. The most specific CIDR wins; between the two ends of a flow, the rule listed first.",
    ),
  patterns: z
    .array(pattern)
    .default(DEFAULT_PATTERNS)
    .describe(
      "Destinations recognised by address or DNS name (private link, managed control planes, load balancers, cloud APIs, instance metadata), each with the provider(s) it belongs to where it is one cloud's. The default is the shipped table (see the README); setting this replaces it, `[]` turns it off.",
    ),
  host_interfaces: z
    .union([z.literal('auto'), z.boolean()], {
      error: (issue) => `${JSON.stringify(issue.input)} is not a choice; expected auto, true or false`,
    })
    .default('auto')
    .describe(
      "Whether this machine's network interface addresses count as this node's own (with loopback and the addresses of node_name's record, which always do): traffic between two of them is same_node. auto: yes, unless the k8s_metadata extension reads a snapshot (the flows were then recorded on another machine). false: for a replay of flows recorded elsewhere without a snapshot (file receiver, standalone). true: a snapshot analysed on the machine that recorded the flows. One set per k8s_metadata extension: cost uses the same one, and a value set here applies to every classify sharing that extension.",
    ),
  exactly_once: z
    .boolean()
    .default(true)
    .describe(
      "Report each connection once across the cluster: the initiator's node reports it when the initiator is in the cluster, otherwise the responder's node; the other copy is dropped and counted (netmon_classify_duplicates_dropped). When the receiver knows only the local and remote ends (flow.initiator_known false), a connection between two nodes is reported by the node whose end has the lower address; one whose remote end is on this node or outside the cluster is always kept. Needs netmon on every node and a node_name the cluster knows (until then nothing is dropped).",
    ),
});

export type ClassifyConfig = z.output<typeof classifyConfig>;
