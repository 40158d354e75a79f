{{/* The passport image reference: digest wins over tag. */}}
{{- define "passport.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* Labels for every object. */}}
{{- define "passport.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ .root.Chart.Name }}-{{ .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Pod annotations: Prometheus scraping of :9912, and the IRSA webhook kept away from the
application containers (with its own token they would bypass passport). */}}
{{- define "passport.podAnnotations" -}}
prometheus.io/scrape: 'true'
prometheus.io/port: '9912'
prometheus.io/path: /metrics
eks.amazonaws.com/skip-containers: {{ .containers }}
{{- end -}}

{{/* Pod security context. No fsGroup: the auth token is 0644 inside the passport-auth
emptyDir, which only the containers that mount it can reach, so no volume is re-grouped. */}}
{{- define "passport.podSecurityContext" -}}
runAsNonRoot: true
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The passport native sidecar: exactly what `passport inject` adds (and k8s/base has).
Called with (dict "root" $ "startupGate" true|false): without the gate (the check Job) the
startup probe is /healthz, as `inject --no-startup-gate` writes it. */}}
{{- define "passport.sidecar" -}}
{{- $gate := .startupGate -}}
{{- with .root -}}
- name: passport
  image: {{ include "passport.image" . }}
  restartPolicy: Always
  args:
  - serve
  env:
  - name: PASSPORT_AUTH_TOKEN_FILE
    value: /var/run/passport/auth-token
  - name: PASSPORT_AUTH_TOKEN_FILE_MODE
    value: '0644'
  - name: PASSPORT_DRAIN_DELAY
    value: {{ .Values.passport.drainDelay }}
  - name: POD_NAME
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  - name: POD_NAMESPACE
    valueFrom:
      fieldRef:
        fieldPath: metadata.namespace
  {{- if .Values.passport.imds }}
  - name: PASSPORT_IMDS
    value: 'true'
  {{- else }}
  - name: PASSPORT_DISABLE_IMDS
    value: 'true'
  {{- end }}
  {{- with .Values.passport.chainRoleArn }}
  - name: PASSPORT_CHAIN_ROLE_ARN
    value: {{ . }}
  {{- end }}
  {{- with .Values.passport.extraRoles }}
  - name: PASSPORT_EXTRA_ROLES
    value: {{ include "passport.extraRoles" . }}
  {{- end }}
  ports:
  - name: passport-admin
    containerPort: 9912
    protocol: TCP
  startupProbe:
    httpGet:
      path: {{ if $gate }}/readyz{{ else }}/healthz{{ end }}
      port: passport-admin
    periodSeconds: 1
    timeoutSeconds: 1
    failureThreshold: 120
  livenessProbe:
    httpGet:
      path: /healthz
      port: passport-admin
    periodSeconds: 10
    timeoutSeconds: 2
    failureThreshold: 3
  resources:
    {{- $resources := deepCopy .Values.passport.resources }}
    {{- if .Values.passport.cpuLimit }}
    {{- $_ := set $resources "limits" (merge (dict "cpu" .Values.passport.cpuLimit) ($resources.limits | default dict)) }}
    {{- end }}
    {{- toYaml $resources | nindent 4 }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities:
      drop:
      - ALL
    seccompProfile:
      type: RuntimeDefault
  volumeMounts:
  - name: passport-auth
    mountPath: /var/run/passport
  terminationMessagePolicy: FallbackToLogsOnError
{{- end -}}
{{- end -}}

{{/* passport.extraRoles as PASSPORT_EXTRA_ROLES takes them: NAME=ARN[,chain], space-separated. */}}
{{- define "passport.extraRoles" -}}
{{- $specs := list }}
{{- $names := list }}
{{- range . }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$" (toString .name)) }}
{{- fail (printf "passport.extraRoles: name %q is not a DNS label ([a-z0-9-], 1 to 63)" (toString .name)) }}
{{- end }}
{{- if eq (toString .name) "default" }}
{{- fail "passport.extraRoles: `default` is roleArn's own name, served at /v1/credentials" }}
{{- end }}
{{- if has (toString .name) $names }}
{{- fail (printf "passport.extraRoles: %s is given twice" .name) }}
{{- end }}
{{- $names = append $names (toString .name) }}
{{- if not (regexMatch "^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\\w+=,.@/-]+$" (toString .roleArn)) }}
{{- fail (printf "passport.extraRoles: %s: roleArn %q is not arn:aws:iam::ACCOUNT_ID:role/NAME" .name (toString .roleArn)) }}
{{- end }}
{{- $specs = append $specs (printf "%s=%s%s" .name .roleArn (ternary ",chain" "" (default false .chain))) }}
{{- end }}
{{- join " " $specs }}
{{- end -}}

{{/* What an application container gets from passport: environment ... */}}
{{- define "passport.appEnv" -}}
{{- with .Values.app.role }}
{{- $names := list }}
{{- range $.Values.passport.extraRoles }}{{ $names = append $names (toString .name) }}{{ end }}
{{- if not (has . $names) }}
{{- fail (printf "app.role %q: not the name of one of passport.extraRoles" .) }}
{{- end }}
{{- end }}
- name: AWS_REGION
  value: {{ .Values.region }}
- name: AWS_CONTAINER_CREDENTIALS_FULL_URI
  value: http://127.0.0.1:9911/v1/credentials{{ with .Values.app.role }}/{{ . }}{{ end }}
- name: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
  value: /var/run/passport/auth-token
{{- if .Values.passport.imds }}
- name: AWS_EC2_METADATA_SERVICE_ENDPOINT
  value: http://127.0.0.1:9911
{{- end }}
- name: NO_PROXY
  value: 127.0.0.1,localhost
{{- end -}}

{{/* ... and the read-only mount of the auth token. */}}
{{- define "passport.appVolumeMounts" -}}
- name: passport-auth
  mountPath: /var/run/passport
  readOnly: true
{{- end -}}

{{/* The in-memory volume passport writes the auth token to. */}}
{{- define "passport.volumes" -}}
- name: passport-auth
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end -}}
