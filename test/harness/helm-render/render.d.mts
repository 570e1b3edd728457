// Types of render.mjs (plain JavaScript, so the deploy script runs with node alone).

export declare const ROOT: string;
export declare const CHART_DIR: string;

/** The Kubernetes version a render is for unless RenderOptions.kubeVersion says otherwise. */
export declare const DEFAULT_KUBE_VERSION: string;

export declare class RenderError extends Error {}

/** The Go renderer's path, built on first use into node_modules/.cache/netmon-helm-render. */
export declare function rendererBinary(): Promise<string>;

/** What values.schema.json finds wrong in merged values, one line each; [] when they pass. */
export declare function schemaProblems(values: unknown): Promise<string[]>;

export interface RenderOptions {
  /** -f files (paths) or value objects, merged in order over the chart's values.yaml. */
  values?: Array<string | Record<string, unknown>>;
  /** Release name (default netmon). */
  name?: string;
  /** Release namespace (default netmon). */
  namespace?: string;
  /** Group/versions .Capabilities.APIVersions.Has answers true for, beyond the built-in ones. */
  apiVersions?: string[];
  /** Also render NOTES.txt. */
  notes?: boolean;
  /** .Capabilities.KubeVersion, e.g. v1.29.4 or v1.30.2-eks-1552ad0 (default DEFAULT_KUBE_VERSION). */
  kubeVersion?: string;
}

export interface RenderedObject {
  /** The template it came from, e.g. netmon/templates/daemonset.yaml. */
  source: string;
  // biome-ignore lint/suspicious/noExplicitAny: a Kubernetes object of any kind, read by tests.
  object: any;
}

export interface Rendered {
  /** The YAML stream, as `helm template` prints it. */
  manifests: string;
  objects: RenderedObject[];
  /** The merged values the templates saw. */
  values: Record<string, unknown>;
  notes?: string;
  /** The Kubernetes version it was rendered for. */
  kubeVersion: string;
}

export declare function renderChart(options?: RenderOptions): Promise<Rendered>;

/** The lower bound of Chart.yaml's kubeVersion, e.g. v1.25.0. */
export declare function oldestKubeVersion(): Promise<string>;

/** deploy/'s generated files by path relative to the repository. */
export declare function deployFiles(): Promise<Record<string, string>>;
