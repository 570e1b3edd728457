{{/* The chart's name, for labels: nameOverride or netmon. */}}
{{- define "netmon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object names: fullnameOverride, else <release>-<name>, or the release name alone when it contains the
name already (release "netmon" → "netmon", not "netmon-netmon"). 63 characters: a DNS label. */}}
{{- define "netmon.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "netmon.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{- define "netmon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "netmon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "netmon.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "netmon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: agent
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "netmon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "netmon.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The chart's Secret holding config.clusterToken. */}}
{{- define "netmon.tokenSecret" -}}
{{- printf "%s-token" (include "netmon.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "netmon.image" -}}
{{- $repo := .Values.image.repository }}
{{- if regexMatch "(^|/)zxporter-netmon$" $repo }}
{{- fail (printf "image.repository is %s, zxporter-netmon's image: this chart runs netmon, whose arguments and configuration that image does not understand. Set image.repository and image.tag to the netmon image you built and pushed to your registry (make image)." $repo) }}
{{- end }}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/* The collection mode, checked: values.schema.json rejects anything else too, but a chart rendered
without the schema (helm template --skip-schema-validation) must not run a mode the agent does not know. */}}
{{- define "netmon.mode" -}}
{{- $mode := .Values.config.collectorMode | toString }}
{{- if not (has $mode (list "auto" "netfilter" "ebpf" "cilium")) }}
{{- fail (printf "config.collectorMode is %q: expected auto, netfilter, ebpf or cilium" $mode) }}
{{- end }}
{{- $mode }}
{{- end }}

{{/*
Host mounts by the names files/privileges.yaml uses. Each: the host path, where the container sees it,
whether it is writable, the hostPath type, mount propagation, and the environment that tells the agent
where it is.
- conntrack_sysctl: the node's net.netfilter sysctls, writable, for the init container that switches on
  conntrack's byte counters and events. No type check: the directory exists only once nf_conntrack is
  loaded, and the init container says so when it is missing.
- cgroup: the node's cgroup2 hierarchy. In its own cgroup namespace the container's /sys/fs/cgroup is
  its own cgroup, where eBPF programs would count the agent's sockets only. On a hybrid node its v1
  controllers are submounts, read-only too only with recursiveReadOnly (the DaemonSet adds it on
  Kubernetes 1.30+).
- bpffs: the node's BPF filesystem, where Cilium pins its conntrack maps; HostToContainer, so a bpffs
  Cilium mounts after the agent started is seen too.
*/}}
{{- define "netmon.mountDefinitions" -}}
conntrack_sysctl:
  hostPath: /proc/sys/net/netfilter
  type: ""
  mountPath: /host/proc/sys/net/netfilter
  readOnly: false
cgroup:
  hostPath: /sys/fs/cgroup
  type: Directory
  mountPath: /host/sys/fs/cgroup
  readOnly: true
  env:
    NETMON_CGROUP_PATH: /host/sys/fs/cgroup
bpffs:
  hostPath: /sys/fs/bpf
  type: DirectoryOrCreate
  mountPath: /sys/fs/bpf
  readOnly: true
  mountPropagation: HostToContainer
  env:
    NETMON_CILIUM_MAPS_DIR: /sys/fs/bpf/tc/globals
{{- end }}

{{/*
What the pod needs from the node, as JSON: capabilities, hostNetwork, mounts (names), init (mounts and
sysctls of the init container), seccomp. From files/privileges.yaml: the entry of config.collectorMode
(auto: the union of netfilter, ebpf and cilium, as auto may run any of them), plus the dns entry when
dns.enabled. A key the chart does not know, or a mount it does not define, fails the render rather than
being ignored.
*/}}
{{- define "netmon.privileges" -}}
{{- $table := .Files.Get "files/privileges.yaml" | fromYaml }}
{{- if hasKey $table "Error" }}
{{- fail (printf "files/privileges.yaml: %s" $table.Error) }}
{{- end }}
{{- $mode := include "netmon.mode" . }}
{{- $entries := ternary (list "netfilter" "ebpf" "cilium") (list $mode) (eq $mode "auto") }}
{{- if .Values.dns.enabled }}
{{- $entries = append $entries "dns" }}
{{- end }}
{{- $defined := include "netmon.mountDefinitions" . | fromYaml }}
{{- $known := list "capabilities" "hostNetwork" "mounts" "init" "seccomp" "why" }}
{{- $caps := list }}
{{- $mounts := list }}
{{- $initMounts := list }}
{{- $sysctls := list }}
{{- $hostNetwork := false }}
{{- $seccomp := "" }}
{{- range $name := $entries }}
{{- if not (hasKey $table $name) }}
{{- fail (printf "files/privileges.yaml has no entry for %s" $name) }}
{{- end }}
{{- $e := index $table $name | default dict }}
{{- range $k, $_ := $e }}
{{- if not (has $k $known) }}
{{- fail (printf "files/privileges.yaml: %s.%s is not a key the chart knows (%s)" $name $k (join ", " $known)) }}
{{- end }}
{{- end }}
{{- $caps = concat $caps ($e.capabilities | default list) }}
{{- $init := $e.init | default dict }}
{{- range $k, $_ := $init }}
{{- if not (has $k (list "mounts" "sysctls")) }}
{{- fail (printf "files/privileges.yaml: %s.init.%s is not a key the chart knows (mounts, sysctls)" $name $k) }}
{{- end }}
{{- end }}
{{- range $m := concat ($e.mounts | default list) ($init.mounts | default list) }}
{{- if not (hasKey $defined $m) }}
{{- fail (printf "files/privileges.yaml: %s names the mount %s, which the chart does not define (%s)" $name $m (keys $defined | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- $mounts = concat $mounts ($e.mounts | default list) }}
{{- $initMounts = concat $initMounts ($init.mounts | default list) }}
{{- $sysctls = concat $sysctls ($init.sysctls | default list) }}
{{- if $e.hostNetwork }}{{ $hostNetwork = true }}{{ end }}
{{- /* Where entries differ, the least confining profile wins: the pod must allow what each needs. */}}
{{- with $e.seccomp }}
{{- if or (eq $seccomp "") (eq . "Unconfined") }}{{ $seccomp = . }}{{ end }}
{{- end }}
{{- end }}
{{- if and $sysctls (not (has "conntrack_sysctl" $initMounts)) }}
{{- fail "files/privileges.yaml: init.sysctls are written under the conntrack_sysctl mount, which init.mounts lacks" }}
{{- end }}
{{- $seccomp = .Values.seccompProfile | default $seccomp | default "RuntimeDefault" }}
{{- $init := dict "mounts" ($initMounts | uniq | sortAlpha) "sysctls" ($sysctls | uniq) }}
{{- dict "capabilities" ($caps | uniq | sortAlpha) "mounts" ($mounts | uniq | sortAlpha) "init" $init "hostNetwork" $hostNetwork "seccomp" $seccomp | toJson }}
{{- end }}

{{/*
Least privilege: root, because Kubernetes gives added capabilities to another user only through file
capabilities, which allowPrivilegeEscalation: false (no_new_privs) switches off; every capability is
dropped but the ones passed in (a list), so root here is not the node's root: it owns the files the agent
opens (sysctls, Cilium's pins, the cgroup tree) and no more.
*/}}
{{- define "netmon.leastPrivilege" -}}
runAsUser: 0
runAsNonRoot: false
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
  {{- with .capabilities }}
  add:
    {{- toYaml . | nindent 4 }}
  {{- end }}
seccompProfile:
  type: {{ .seccomp }}
{{- end }}

{{/* The agent's securityContext: the user's when given, else least privilege for the mode. */}}
{{- define "netmon.securityContext" -}}
{{- if .Values.securityContext }}
{{- toYaml .Values.securityContext }}
{{- else }}
{{- include "netmon.leastPrivilege" (include "netmon.privileges" . | fromJson) }}
{{- end }}
{{- end }}

{{- define "netmon.hostNetwork" -}}
{{- if kindIs "invalid" .Values.hostNetwork }}
{{- (include "netmon.privileges" . | fromJson).hostNetwork }}
{{- else }}
{{- .Values.hostNetwork }}
{{- end }}
{{- end }}

{{/*
The netmon configuration the chart writes: configs/kubernetes.yaml's DaemonSet pipeline with the
exporters the values enable.
*/}}
{{- define "netmon.config" -}}
{{- $exporters := list }}
{{- if .Values.prometheus.enabled }}{{ $exporters = append $exporters "prometheus" }}{{ end }}
{{- if .Values.devzero.enabled }}{{ $exporters = append $exporters "devzero" }}{{ end }}
{{- if not $exporters }}
{{- fail "prometheus.enabled and devzero.enabled are both false: the flows would go nowhere. Enable one, or write your own configuration in `pipeline`." }}
{{- end }}
{{- $extensions := list "health_check" "k8s_metadata" }}
{{- if .Values.dns.enabled }}{{ $extensions = append $extensions "dns_cache" }}{{ end -}}
# netmon's pipeline, written by the netmon Helm chart (release {{ .Release.Name }}): the node's flows →
# delta → k8s_attributes → classify → cost → {{ join ", " $exporters }}
{{- if .Values.dns.enabled }}; DNS lookups → {{ join ", " $exporters }}{{ end }}.
# The chart's `pipeline` value replaces it, `pipelineOverrides` is merged over it.
# Environment (set by the DaemonSet): NETMON_COLLECTION_MODE, NODE_NAME, POD_IP, NETMON_STATE_DIR,
# NETMON_CGROUP_PATH and NETMON_CILIUM_MAPS_DIR (where the mode's host mounts are), NETMON_READ_INTERVAL,
# NETMON_CLOUD_*, and for DevZero DAKR_URL, CLUSTER_TOKEN, CLUSTER_ID, FLUSH_INTERVAL.
receivers:
  flows:
    # auto probes the node (Cilium's maps, BTF, cgroup2, capabilities, conntrack), runs cilium, ebpf or
    # netfilter, the first usable in that order, and says what it chose and why in the log and /status;
    # a mode named here is never swapped for another.
    mode: ${env:NETMON_COLLECTION_MODE:-auto}
    ebpf:
      # The node's cgroup2 root as mounted into the pod; empty: the container's own (ebpf refuses it).
      cgroup_path: ${env:NETMON_CGROUP_PATH:-}
      read_interval: ${env:NETMON_READ_INTERVAL:-5s}
    netfilter:
      # A full dump every interval; NEW/DESTROY events catch connections shorter than that.
      read_interval: ${env:NETMON_READ_INTERVAL:-5s}
    cilium:
      # Where Cilium pins its conntrack maps, as this pod sees the node's bpffs.
      maps_dir: ${env:NETMON_CILIUM_MAPS_DIR:-/sys/fs/bpf/tc/globals}
      read_interval: ${env:NETMON_READ_INTERVAL:-5s}
{{- if .Values.dns.enabled }}
  dns:
    # Every pod's lookups, traced with eBPF on the node's cgroup2; where that cannot run, the agent goes
    # on without DNS and says so.
    cgroup_path: ${env:NETMON_CGROUP_PATH:-}
    optional: true
{{- end }}

processors:
  delta:
    # Cumulative conntrack and Cilium counters → bytes per interval. The state is on the node (state.hostPath),
    # so a restarted or upgraded pod neither loses nor double-counts the bytes moved while it was away.
    state_file: ${env:NETMON_STATE_DIR:-/var/lib/netmon}/delta.state
  k8s_attributes: {}
  classify:
    # Whose API and metadata endpoints are the cloud's own (cloud_api); empty: the nodes' provider.
    provider: ${env:NETMON_CLOUD_PROVIDER:-}
  cost:
    # Empty: from the nodes' spec.providerID and topology labels.
    provider: ${env:NETMON_CLOUD_PROVIDER:-}
    region: ${env:NETMON_CLOUD_REGION:-}
    zone: ${env:NETMON_CLOUD_ZONE:-}

exporters:
{{- if .Values.prometheus.enabled }}
  prometheus:
    # The pod's address, where Prometheus scrapes it; no authentication, so not every interface.
    endpoint: ${env:POD_IP}:{{ .Values.prometheus.port }}
    granularity: {{ .Values.prometheus.granularity }}
{{- end }}
{{- if .Values.devzero.enabled }}
  devzero:
    # DevZero's control plane, as zxporter-netmon: sends only with both DAKR_URL and CLUSTER_TOKEN, else
    # local only (zxporter-netmon's JSON at :{{ .Values.config.containerPort }}/metrics).
    endpoint: ${env:DAKR_URL:-}
    token: ${env:CLUSTER_TOKEN:-}
    cluster_id: ${env:CLUSTER_ID:-}
    node_name: ${env:NODE_NAME:-}
    flush_interval: ${env:FLUSH_INTERVAL:-60s}
    sending_queue:
      # Intervals not acknowledged yet survive a restart here.
      directory: ${env:NETMON_STATE_DIR:-/var/lib/netmon}
{{- end }}

extensions:
  health_check:
    # The pod's address: the kubelet probes /healthz and /readyz there.
    endpoint: ${env:POD_IP}:{{ .Values.config.containerPort }}
  k8s_metadata:
    # Required, not guessed: each connection is reported by its initiator's node only, decided by this name.
    node_name: ${env:NODE_NAME}
    # Every pod in the cluster, so a flow's far end is known by pod, workload and zone wherever it runs.
    scope: cluster
{{- if .Values.dns.enabled }}
  dns_cache: {}
{{- end }}

service:
  extensions: [{{ join ", " $extensions }}]
  pipelines:
    flows:
      receivers: [flows]
      processors: [delta, k8s_attributes, classify, cost]
      exporters: [{{ join ", " $exporters }}]
{{- if .Values.dns.enabled }}
    dns:
      receivers: [dns]
      exporters: [{{ join ", " $exporters }}]
{{- end }}
{{- end }}

{{/* The configuration file the agent runs: the user's `pipeline`, else the chart's. */}}
{{- define "netmon.configFile" -}}
{{- if .Values.pipeline }}
# netmon's pipeline, from the netmon Helm chart's `pipeline` value (release {{ .Release.Name }}).
{{ toYaml .Values.pipeline }}
{{- else }}
{{- include "netmon.config" . }}
{{- end }}
{{- end }}
