{{/* Names */}}

{{- define "signpost.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>, or <release>-<chart> when the release's name does not hold the chart's. */}}
{{- define "signpost.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "signpost.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object; (dict "root" $ "component" "proxy") */}}
{{- define "signpost.labels" -}}
helm.sh/chart: {{ include "signpost.chart" .root }}
{{ include "signpost.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: signpost
{{- end -}}

{{/* The labels Deployments select their pods by. The operator's per-Destination Services select
the proxy's pods by app.kubernetes.io/instance and app.kubernetes.io/component. */}}
{{- define "signpost.selectorLabels" -}}
app.kubernetes.io/name: {{ include "signpost.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{- define "signpost.serverName" -}}
{{- printf "%s-server" (include "signpost.fullname" .) -}}
{{- end -}}

{{- define "signpost.serverUrl" -}}
{{- if .Values.server.publicUrl -}}
{{- .Values.server.publicUrl | trimSuffix "/" -}}
{{- else -}}
{{- printf "http://%s.%s.svc.cluster.local:%v" (include "signpost.serverName" .) .Release.Namespace .Values.server.service.port -}}
{{- end -}}
{{- end -}}

{{- define "signpost.brokerSecretName" -}}
{{- printf "%s-broker" (include "signpost.fullname" .) -}}
{{- end -}}

{{- define "signpost.masterKeySecretName" -}}
{{- .Values.server.masterKey.existingSecret | default (printf "%s-master-key" (include "signpost.fullname" .)) -}}
{{- end -}}

{{- define "signpost.valuesConfigMapName" -}}
{{- printf "%s-values" (include "signpost.fullname" .) -}}
{{- end -}}

{{/* Images: (dict "root" $ "image" .Values.proxy.image). No registry unless deployment.image.registry. */}}
{{- define "signpost.image" -}}
{{- $registry := .root.Values.deployment.image.registry | default "" | trimSuffix "/" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion | toString -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "signpost.pullPolicy" -}}
{{- .image.pullPolicy | default .root.Values.deployment.image.pullPolicy | default "IfNotPresent" -}}
{{- end -}}

{{/* Pod spec lines every component shares. */}}
{{- define "signpost.podCommon" -}}
{{- with .Values.deployment.image.pullSecret }}
imagePullSecrets:
  - name: {{ . }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Instances */}}

{{/* The SQLite case: no external PostgreSQL. */}}
{{- define "signpost.sqlite" -}}
{{- if not .Values.server.database.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* "true" when the proxy and the operator use the in-cluster server's first-run instance. */}}
{{- define "signpost.bootstrap" -}}
{{- if and .Values.server.enabled (not (include "signpost.userInstances" . | fromYamlArray)) -}}true{{- end -}}
{{- end -}}

{{- define "signpost.userInstances" -}}
{{- $ds := ((.Values.config | default dict).integration | default dict).destinationService | default dict -}}
{{- toYaml ($ds.instances | default list) -}}
{{- end -}}

{{/* The Secret the chart makes from an instance's secretData: (dict "root" $ "instance" $inst). */}}
{{- define "signpost.instanceSecretName" -}}
{{- $creds := .instance.serviceCredentials | default dict -}}
{{- if $creds.secretName -}}
{{- $creds.secretName -}}
{{- else -}}
{{- printf "%s-%s-service-key" (include "signpost.fullname" .root) .instance.name | lower | replace "_" "-" | replace "." "-" | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "signpost.instanceSecretKey" -}}
{{- $creds := .instance.serviceCredentials | default dict -}}
{{- $creds.secretKey | default "service-key" -}}
{{- end -}}

{{/* The values tree the proxy and the operator read (/etc/signpost/values.yaml): `config` and
`additionalCAs` of .Values, with secretData replaced by the Secret the chart makes from it, and
with the in-cluster server's instance `default` when no instance is configured. */}}
{{- define "signpost.valuesTree" -}}
{{- $config := deepCopy (.Values.config | default dict) -}}
{{- if not $config.integration -}}
{{- $_ := set $config "integration" dict -}}
{{- end -}}
{{- if not $config.integration.destinationService -}}
{{- $_ := set $config.integration "destinationService" dict -}}
{{- end -}}
{{- $ds := $config.integration.destinationService -}}
{{- $instances := list -}}
{{- range $inst := include "signpost.userInstances" . | fromYamlArray -}}
{{- $creds := $inst.serviceCredentials | default dict -}}
{{- if $creds.secretData -}}
{{- $name := include "signpost.instanceSecretName" (dict "root" $ "instance" $inst) -}}
{{- $key := include "signpost.instanceSecretKey" (dict "root" $ "instance" $inst) -}}
{{- $_ := unset $creds "secretData" -}}
{{- $_ := set $creds "secretName" $name -}}
{{- $_ := set $creds "secretKey" $key -}}
{{- $_ := set $inst "serviceCredentials" $creds -}}
{{- end -}}
{{- $instances = append $instances $inst -}}
{{- end -}}
{{- if include "signpost.bootstrap" . -}}
{{- $instances = list (dict "name" "default") -}}
{{- $_ := set $ds "defaultInstanceName" "default" -}}
{{- end -}}
{{- $_ := set $ds "instances" $instances -}}
{{- toYaml (dict "config" $config "additionalCAs" (.Values.additionalCAs | default dict)) -}}
{{- end -}}

{{/* Checks that fail the install with the key at fault. */}}
{{- define "signpost.validate" -}}
{{- $instances := include "signpost.userInstances" . | fromYamlArray -}}
{{- if and (not .Values.server.enabled) (not $instances) -}}
{{- fail "config.integration.destinationService.instances: at least one instance is needed with server.enabled=false (the proxy and the operator have no Destination service otherwise)" -}}
{{- end -}}
{{- if and .Values.server.enabled (include "signpost.sqlite" .) (gt (int .Values.server.replicas) 1) -}}
{{- fail (printf "server.replicas: %v replicas need an external PostgreSQL (server.database.existingSecret); with SQLite on its volume the server runs one" .Values.server.replicas) -}}
{{- end -}}
{{- $names := list -}}
{{- range $inst := $instances -}}
{{- if has $inst.name $names -}}
{{- fail (printf "config.integration.destinationService.instances: the name '%s' is given twice" $inst.name) -}}
{{- end -}}
{{- $names = append $names $inst.name -}}
{{- end -}}
{{- $default := ((.Values.config.integration | default dict).destinationService | default dict).defaultInstanceName -}}
{{- if and $default $instances (not (has $default $names)) -}}
{{- fail (printf "config.integration.destinationService.defaultInstanceName: '%s' is not one of the instances (%s)" $default (join ", " $names)) -}}
{{- end -}}
{{- end -}}
