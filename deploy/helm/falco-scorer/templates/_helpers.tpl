{{/* Chart name, truncated to the 63 characters Kubernetes allows. */}}
{{- define "falco-scorer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart unless the release already holds the chart name. */}}
{{- define "falco-scorer.fullname" -}}
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

{{- define "falco-scorer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "falco-scorer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "falco-scorer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "falco-scorer.labels" -}}
helm.sh/chart: {{ include "falco-scorer.chart" . }}
{{ include "falco-scorer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "falco-scorer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "falco-scorer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "falco-scorer.secretName" -}}
{{- default (include "falco-scorer.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "falco-scorer.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
falco-scorer.checkSecrets fails the render when the config reads a file the
pod will not have: falco-scorer refuses to start on a *_file it cannot read,
and a pod that never starts is found later and further from the cause than
a failed install. The pod mounts one Secret (the chart's, or
secrets.existingSecret) at /etc/falco-scorer/secrets and sets no environment
variables, so every *_file of an enabled part must name a key of that
Secret. The keys of an existing Secret cannot be seen at render time: they
are checked by falco-scorer at start.
*/}}
{{- define "falco-scorer.checkSecrets" -}}
{{- $dir := "/etc/falco-scorer/secrets/" -}}
{{- $c := .Values.config | default dict -}}
{{- $sinks := $c.sinks | default dict -}}
{{- /* The chart's Secret: key -> the value that fills it. */ -}}
{{- $values := dict "admin-token" "secrets.adminToken" "slack-webhook" "secrets.slackWebhookURL" "kafka-password" "secrets.kafkaPassword" "ingest-token" "secrets.ingestToken" -}}
{{- $have := dict "admin-token" true -}}
{{- if .Values.secrets.slackWebhookURL }}{{ $_ := set $have "slack-webhook" true }}{{ end -}}
{{- if .Values.secrets.kafkaPassword }}{{ $_ := set $have "kafka-password" true }}{{ end -}}
{{- if .Values.secrets.ingestToken }}{{ $_ := set $have "ingest-token" true }}{{ end -}}
{{- /* Files read at start: [config key, path]. */ -}}
{{- $files := list -}}
{{- $http := (($c.inputs | default dict).http | default dict) -}}
{{- $files = append $files (list "config.inputs.http.token_file" $http.token_file) -}}
{{- $files = append $files (list "config.admin.token_file" ($c.admin | default dict).token_file) -}}
{{- $slack := $sinks.slack | default dict -}}
{{- if $slack.enabled -}}
{{- if not (or $slack.webhook_url $slack.webhook_url_file $slack.bot_token $slack.bot_token_file) -}}
{{- fail "config.sinks.slack: enabled without a webhook URL: set config.sinks.slack.webhook_url_file to /etc/falco-scorer/secrets/slack-webhook and secrets.slackWebhookURL (the chart sets no environment variables, so *_env is not a source here)" -}}
{{- end -}}
{{- $files = append $files (list "config.sinks.slack.webhook_url_file" $slack.webhook_url_file) -}}
{{- $files = append $files (list "config.sinks.slack.bot_token_file" $slack.bot_token_file) -}}
{{- end -}}
{{- $kafka := $sinks.kafka | default dict -}}
{{- if $kafka.enabled -}}
{{- $sasl := $kafka.sasl | default dict -}}
{{- $tls := $kafka.tls | default dict -}}
{{- if and $sasl.mechanism (not (or $sasl.password $sasl.password_file)) -}}
{{- fail (printf "config.sinks.kafka.sasl: mechanism %s without a password: set config.sinks.kafka.sasl.password_file to /etc/falco-scorer/secrets/kafka-password and secrets.kafkaPassword (the chart sets no environment variables, so *_env is not a source here)" $sasl.mechanism) -}}
{{- end -}}
{{- $files = append $files (list "config.sinks.kafka.sasl.password_file" $sasl.password_file) -}}
{{- $files = append $files (list "config.sinks.kafka.tls.ca_file" $tls.ca_file) -}}
{{- $files = append $files (list "config.sinks.kafka.tls.cert_file" $tls.cert_file) -}}
{{- $files = append $files (list "config.sinks.kafka.tls.key_file" $tls.key_file) -}}
{{- end -}}
{{- $webhook := $sinks.webhook | default dict -}}
{{- if $webhook.enabled -}}
{{- if not (or $webhook.url $webhook.url_file) -}}
{{- fail "config.sinks.webhook: enabled without a url (set config.sinks.webhook.url, or url_file under /etc/falco-scorer/secrets/ with secrets.existingSecret)" -}}
{{- end -}}
{{- $files = append $files (list "config.sinks.webhook.url_file" $webhook.url_file) -}}
{{- $files = append $files (list "config.sinks.webhook.bearer_token_file" $webhook.bearer_token_file) -}}
{{- end -}}
{{- range $files -}}
{{- $key := index . 0 -}}
{{- $path := index . 1 | default "" | toString -}}
{{- if $path -}}
{{- if not (hasPrefix $dir $path) -}}
{{- fail (printf "%s: %s is not in the pod: the chart mounts only its Secret (or secrets.existingSecret) at %s; name a key there" $key $path $dir) -}}
{{- end -}}
{{- $name := trimPrefix $dir $path -}}
{{- if and (not $.Values.secrets.existingSecret) (not (hasKey $have $name)) -}}
{{- if hasKey $values $name -}}
{{- fail (printf "%s: %s would be missing and falco-scorer would not start: set %s (or secrets.existingSecret, a Secret with key %s)" $key $path (get $values $name) $name) -}}
{{- else -}}
{{- fail (printf "%s: %s: the chart's Secret has no key %s (it holds admin-token, slack-webhook, kafka-password, ingest-token): set secrets.existingSecret to a Secret that has it" $key $path $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
