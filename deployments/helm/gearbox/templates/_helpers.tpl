{{/* The name of every object: <release>-gearbox, or the release name when it already says gearbox. */}}
{{- define "gearbox.fullname" -}}
{{- if contains "gearbox" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-gearbox" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the workers; never change them on upgrade. */}}
{{- define "gearbox.selectorLabels" -}}
app.kubernetes.io/name: gearbox
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "gearbox.labels" -}}
{{ include "gearbox.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "gearbox.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* Where the mounted secrets and caches are. */}}
{{- define "gearbox.authDir" -}}/etc/gearbox/nats-auth{{- end -}}
{{- define "gearbox.tlsDir" -}}/etc/gearbox/nats-tls{{- end -}}
{{- define "gearbox.cacheDir" -}}/var/cache/gearbox{{- end -}}

{{/*
gearbox.validate fails the render with a message naming the value at fault.
The schema checks types and names; this checks what depends on several values.
*/}}
{{- define "gearbox.validate" -}}
{{- $owned := list "GEARBOX_NATS_URL" "GEARBOX_NATS_CREDS" "GEARBOX_NATS_USER" "GEARBOX_NATS_PASSWORD" "GEARBOX_NATS_TOKEN" "GEARBOX_NATS_NKEY_SEED" "GEARBOX_NATS_CA" "GEARBOX_NATS_CERT" "GEARBOX_NATS_KEY" "GEARBOX_PREFIX" "GEARBOX_DEVICE" "GEARBOX_METRICS_ADDR" "GEARBOX_WORKER_NAME" "GEARBOX_CUDA_CACHE" -}}
{{- range $k, $v := .Values.env -}}
{{- if has $k $owned -}}
{{- fail (printf "env.%s: the chart sets it; use the nats, prefix, gpu or metrics values instead" $k) -}}
{{- end -}}
{{- end -}}
{{- $a := .Values.nats.auth -}}
{{- range $k := list "credsKey" "nkeySeedKey" "userKey" "passwordKey" "tokenKey" -}}
{{- if and (index $a $k) (not $a.secretName) -}}
{{- fail (printf "nats.auth.%s is set but nats.auth.secretName is empty: name the Secret that holds it" $k) -}}
{{- end -}}
{{- end -}}
{{- $methods := 0 -}}
{{- range $k := list "credsKey" "nkeySeedKey" "userKey" "tokenKey" -}}
{{- if index $a $k }}{{ $methods = add1 $methods }}{{ end -}}
{{- end -}}
{{- if gt $methods 1 -}}
{{- fail "nats.auth: set one way to authenticate (credsKey, nkeySeedKey, userKey with passwordKey, or tokenKey); the worker refuses several" -}}
{{- end -}}
{{- if ne (empty $a.userKey) (empty $a.passwordKey) -}}
{{- fail "nats.auth.userKey and nats.auth.passwordKey go together: set both or neither" -}}
{{- end -}}
{{- $t := .Values.nats.tls -}}
{{- if and $t.secretName (ne (empty $t.certKey) (empty $t.keyKey)) -}}
{{- fail "nats.tls.certKey and nats.tls.keyKey go together (a client certificate needs its key): set both or neither" -}}
{{- end -}}
{{- if and $t.secretName (not (or $t.caKey $t.certKey)) -}}
{{- fail "nats.tls.secretName is set but names no file: set caKey, or certKey and keyKey" -}}
{{- end -}}
{{- if and .Values.keda.enabled (lt (int .Values.keda.maxReplicaCount) (int .Values.keda.minReplicaCount)) -}}
{{- fail (printf "keda.maxReplicaCount (%v) is below keda.minReplicaCount (%v)" .Values.keda.maxReplicaCount .Values.keda.minReplicaCount) -}}
{{- end -}}
{{- end -}}
