{{/* Chart name, or nameOverride. */}}
{{- define "llm-autoscaler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object names: the release name when it already contains the chart name (helm install
llm-autoscaler ... gives the same names as the kustomize base), else <release>-<chart>. */}}
{{- define "llm-autoscaler.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "llm-autoscaler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-autoscaler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "llm-autoscaler.labels" -}}
{{ include "llm-autoscaler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* A container port from config.service.ports, with the serve defaults
(autoscaler.config.PortsConfig). Call with (list $ "https" 6443). */}}
{{- define "llm-autoscaler.port" -}}
{{- $root := index . 0 -}}
{{- $ports := dig "service" "ports" (dict) $root.Values.config -}}
{{- dig (index . 1) (index . 2) $ports | int -}}
{{- end -}}

{{/* JSON list of the config workloads that are scaled (not in shadow mode; a workload's own
`shadow` wins over service.shadow), for the HPAs or ScaledObjects. */}}
{{- define "llm-autoscaler.scaledWorkloads" -}}
{{- $globalShadow := dig "service" "shadow" false .Values.config -}}
{{- $out := list -}}
{{- range .Values.config.workloads -}}
{{- $shadow := $globalShadow -}}
{{- if and (hasKey . "shadow") (not (kindIs "invalid" .shadow)) -}}
{{- $shadow = .shadow -}}
{{- end -}}
{{- if not $shadow -}}
{{- $out = append $out . -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* min_replicas / max_replicas of a workload with the config defaults (1 and 10). */}}
{{- define "llm-autoscaler.minReplicas" -}}
{{- if hasKey . "min_replicas" }}{{ .min_replicas | int }}{{ else }}1{{ end -}}
{{- end -}}
{{- define "llm-autoscaler.maxReplicas" -}}
{{- if hasKey . "max_replicas" }}{{ .max_replicas | int }}{{ else }}10{{ end -}}
{{- end -}}

{{/* The HPA behaviour for HPAs and ScaledObjects: autoscaling.behavior, plus the per-HPA
tolerance of autoscaling.tolerance when enabled. The field needs Kubernetes 1.33+ (older API
servers reject it), so it is refused for an older cluster, and it is only set through
autoscaling.tolerance, where that check happens. */}}
{{- define "llm-autoscaler.behavior" -}}
{{- $behavior := deepCopy .Values.autoscaling.behavior -}}
{{- $tolerance := .Values.autoscaling.tolerance -}}
{{- range $direction := list "scaleUp" "scaleDown" -}}
{{- if hasKey (get $behavior $direction | default dict) "tolerance" -}}
{{- fail (printf "autoscaling.behavior.%s.tolerance: use autoscaling.tolerance (enabled, %s) instead" $direction $direction) -}}
{{- end -}}
{{- end -}}
{{- if $tolerance.enabled -}}
{{- if semverCompare "<1.33.0-0" .Capabilities.KubeVersion.Version -}}
{{- fail (printf "autoscaling.tolerance.enabled needs Kubernetes 1.33+ (HPAConfigurableTolerance, on by default from 1.35); the cluster is %s" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- range $direction := list "scaleUp" "scaleDown" -}}
{{- $rules := get $behavior $direction | default dict -}}
{{- $_ := set $rules "tolerance" (get $tolerance $direction) -}}
{{- $_ := set $behavior $direction $rules -}}
{{- end -}}
{{- end -}}
{{- toYaml $behavior -}}
{{- end -}}
