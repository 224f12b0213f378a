{{/*
Chart name, truncated to the 63 characters DNS names allow.
*/}}
{{- define "payorch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart> unless the release name already contains the chart name.
*/}}
{{- define "payorch.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "payorch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "payorch.labels" -}}
helm.sh/chart: {{ include "payorch.chart" . }}
{{ include "payorch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: server
app.kubernetes.io/part-of: payorch
{{- end }}

{{/*
Selector labels (immutable on the Deployment: never add to these).
*/}}
{{- define "payorch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "payorch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "payorch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "payorch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: repository@digest when a digest is given, else repository:tag (tag defaults to appVersion).
*/}}
{{- define "payorch.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Directory where merchants.json is mounted.
*/}}
{{- define "payorch.configDir" -}}
/etc/payorch
{{- end }}

{{/*
merchants.json, in the exact shape payorchd reads. Built as a dict and serialised with toPrettyJson,
so values are JSON-escaped and nothing but these fields can reach the file.
*/}}
{{- define "payorch.merchantsJson" -}}
{{- $mount := trimSuffix "/" .Values.merchantSecrets.mountPath }}
{{- $list := list }}
{{- range .Values.merchants }}
{{- $verify := $.Values.paykka.verifyResponseSignatures }}
{{- if hasKey . "verifyResponseSignatures" }}
{{- $verify = .verifyResponseSignatures }}
{{- end }}
{{- $m := dict
      "merchant_id" .merchantId
      "app_id" .appId
      "client_key" .clientKey
      "base_url" (.baseUrl | default $.Values.paykka.baseUrl)
      "verify_response_signatures" $verify
      "private_key_file" (printf "%s/%s/private_key.pem" $mount .merchantId)
      "paykka_public_key_file" (printf "%s/%s/paykka_public.pem" $mount .merchantId) }}
{{- $list = append $list $m }}
{{- end }}
{{- dict "merchants" $list | toPrettyJson }}
{{- end }}

{{/*
Cross-field checks the JSON schema cannot express. Called from the Deployment.
*/}}
{{- define "payorch.validate" -}}
{{- $drain := add (int .Values.server.drainGraceSeconds) (int .Values.server.drainDelaySeconds) }}
{{- $pre := int .Values.preStopSleepSeconds }}
{{- if le (int .Values.terminationGracePeriodSeconds) (add $drain $pre) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than server.drainDelaySeconds + server.drainGraceSeconds (%d) + preStopSleepSeconds (%d), or in-flight payments are killed mid-call" (int .Values.terminationGracePeriodSeconds) $drain $pre) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (not (or .Values.autoscaling.targetCPUUtilizationPercentage .Values.autoscaling.targetMemoryUtilizationPercentage)) }}
{{- fail "autoscaling is enabled but both targetCPUUtilizationPercentage and targetMemoryUtilizationPercentage are null" }}
{{- end }}
{{- $ids := dict }}
{{- range .Values.merchants }}
{{- if hasKey $ids .merchantId }}
{{- fail (printf "merchants: merchantId %q is listed twice" .merchantId) }}
{{- end }}
{{- $_ := set $ids .merchantId true }}
{{- if not (or .existingSecret $.Values.merchantSecrets.existingSecret) }}
{{- fail (printf "merchants: %q has no key Secret: set merchantSecrets.existingSecret (or merchants[].existingSecret). Keys are never taken from values." .merchantId) }}
{{- end }}
{{- end }}
{{- if and .Values.tls.certManager.enabled (not .Values.tls.certManager.issuerRef.name) (not .Values.server.insecurePlaintext) }}
{{- fail "tls.certManager.enabled needs tls.certManager.issuerRef.name (the Issuer or ClusterIssuer that signs payorchd's and the callers' certificates)" }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.host) }}
{{- fail "ingress.enabled needs ingress.host (the public host PayKKa posts webhooks to)" }}
{{- end }}
{{- $idents := dict }}
{{- range .Values.callerPolicy.callers }}
{{- if hasKey $idents .identity }}
{{- fail (printf "callerPolicy.callers: identity %q is listed twice" .identity) }}
{{- end }}
{{- $_ := set $idents .identity true }}
{{- end }}
{{- if .Values.networkPolicy.enabled }}
{{- if and (not .Values.networkPolicy.egress.paykka.cidrs) (not .Values.networkPolicy.egress.paykka.publicExcept) }}
{{- fail "networkPolicy.egress.paykka: cidrs and publicExcept are both empty, which would open PayKKa's ports to every address, cluster included: list PayKKa's (or your egress proxy's) CIDRs. See the chart README." }}
{{- end }}
{{- $r := .Values.networkPolicy.egress.redis }}
{{- if not (or $r.podSelector $r.namespaceSelector $r.cidrs) }}
{{- fail "networkPolicy.egress.redis needs podSelector, namespaceSelector or cidrs, or payorchd cannot reach Redis" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Where the Redis password file is mounted (from redis.existingSecret).
*/}}
{{- define "payorch.redisPasswordDir" -}}
/var/run/secrets/payorch/redis
{{- end }}

{{/*
Names of the Secrets the pods read at start (merchant keys, Redis password; not the gRPC TLS
Secrets, which payorchd re-reads by itself), sorted and without duplicates.
*/}}
{{- define "payorch.secretNames" -}}
{{- $names := list }}
{{- range .Values.merchants }}
{{- $names = append $names (.existingSecret | default $.Values.merchantSecrets.existingSecret) }}
{{- end }}
{{- with .Values.redis.existingSecret }}
{{- $names = append $names . }}
{{- end }}
{{- $names | uniq | sortAlpha | toJson }}
{{- end }}

{{/*
checksum/secrets: sha256 over secretsRevision and, for each referenced Secret, its name and data as
read by `lookup` (empty when rendering without a cluster, e.g. `helm template`). A rotated Secret
therefore changes the pod template at the next `helm upgrade`.
*/}}
{{- define "payorch.secretsChecksum" -}}
{{- $parts := list (printf "revision=%s" .Values.secretsRevision) }}
{{- range (include "payorch.secretNames" . | fromJsonArray) }}
{{- $secret := lookup "v1" "Secret" $.Release.Namespace . | default dict }}
{{- $parts = append $parts (printf "%s=%s" . (get $secret "data" | default dict | toJson)) }}
{{- end }}
{{- join "\n" $parts | sha256sum }}
{{- end }}

{{/*
PromQL label matchers for this release's series (metrics.prometheusRule.selector, or the labels the
chart's ServiceMonitor produces).
*/}}
{{- define "payorch.metricsSelector" -}}
{{- .Values.metrics.prometheusRule.selector | default (printf "namespace=%q,job=%q" .Release.Namespace (include "payorch.fullname" .)) }}
{{- end }}

{{/*
Labels of the `helm test` pod: the release's labels without app.kubernetes.io/name, so that no
selector of the chart (Service, PDB, topology spread, NetworkPolicy target) picks it up.
*/}}
{{- define "payorch.testLabels" -}}
helm.sh/chart: {{ include "payorch.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: test-health
app.kubernetes.io/part-of: payorch
{{- end }}

{{/*
The Secret with payorchd's gRPC certificate, key and callers' CA (written by cert-manager when
tls.certManager.enabled).
*/}}
{{- define "payorch.tlsSecret" -}}
{{- .Values.tls.existingSecret | default (printf "%s-tls" (include "payorch.fullname" .)) }}
{{- end }}

{{/*
The Secret with the helm test pod's client certificate.
*/}}
{{- define "payorch.testClientSecret" -}}
{{- .Values.tests.health.clientSecret | default (printf "%s-test-client" (include "payorch.fullname" .)) }}
{{- end }}

{{/*
Where the gRPC TLS files (tls.crt, tls.key, ca.crt) and the caller policy directory are mounted (not
inside configDir: no mount nested in another ConfigMap volume).
*/}}
{{- define "payorch.tlsDir" -}}
/var/run/secrets/payorch/tls
{{- end }}
{{- define "payorch.policyDir" -}}
/etc/payorch-policy
{{- end }}

{{/*
The caller policy ConfigMap's name.
*/}}
{{- define "payorch.callerPolicyConfigMap" -}}
{{- .Values.callerPolicy.existingConfigMap | default (printf "%s-caller-policy" (include "payorch.fullname" .)) }}
{{- end }}

{{/*
caller_policy.json in payorchd's shape (service/caller_policy.h).
*/}}
{{- define "payorch.callerPolicyJson" -}}
{{- $list := list }}
{{- range .Values.callerPolicy.callers }}
{{- $list = append $list (dict "identity" .identity "merchants" .merchants "methods" .methods) }}
{{- end }}
{{- dict "callers" $list | toPrettyJson }}
{{- end }}

{{/*
appProtocol of the gRPC port: TLS that payorchd terminates itself, or cleartext HTTP/2.
*/}}
{{- define "payorch.grpcAppProtocol" -}}
{{- .Values.service.grpcAppProtocol | default (ternary "kubernetes.io/h2c" "tls" .Values.server.insecurePlaintext) }}
{{- end }}
