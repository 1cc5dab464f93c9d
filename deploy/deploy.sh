#!/usr/bin/env bash
# Deploy phasewatch on Google Cloud so that nothing is lost: Cloud Run behind IAM, the store
# on Cloud SQL for PostgreSQL, events by Pub/Sub push (OIDC) with a dead-letter topic, the
# periodic jobs by Cloud Scheduler (OIDC), Cloud Scheduler's outcomes by a log sink, the
# Slack and PagerDuty secrets in Secret Manager, /metrics scraped by Managed Service for
# Prometheus (the run-gmp-sidecar container), traces to Cloud Trace, the dashboards, and a
# watchdog in Cloud Monitoring that tells someone when phasewatch itself stops working.
#
# Every step is idempotent: run it again after changing a variable, or to pick up a new
# image. DRY_RUN=1 prints the commands instead of running them. docs/deploy.md explains
# each part and when to choose SQLite, PostgreSQL and the BigQuery mirror.
#
#   PROJECT=my-project REGION=us-east1 IMAGE=us-east1-docker.pkg.dev/my-project/phasewatch/phasewatch:0.1.0 \
#   CONFIG=my-pipeline.yaml TOPICS="nba-phase3-complete nba-phase4-complete" \
#   WATCHDOG_CHANNELS="1234567890123456789" deploy/deploy.sh
set -euo pipefail

: "${PROJECT:?set PROJECT, the Google Cloud project id}"
: "${REGION:?set REGION, e.g. us-east1}"
: "${IMAGE:?set IMAGE, the phasewatch image built from the Dockerfile}"
: "${CONFIG:?set CONFIG, your pipeline YAML (phasewatch config validate it first)}"
SERVICE=${SERVICE:-phasewatch}
TOPICS=${TOPICS:-}                      # the pipeline's completion topics, space separated
SQL_INSTANCE=${SQL_INSTANCE:-phasewatch}
SQL_TIER=${SQL_TIER:-db-g1-small}
DB_NAME=${DB_NAME:-phasewatch}
DB_USER=${DB_USER:-phasewatch}
SLACK_ENV=${SLACK_ENV:-SLACK_WEBHOOK_URL}            # the *_env names your alerting config uses
PAGERDUTY_ENV=${PAGERDUTY_ENV:-PAGERDUTY_ROUTING_KEY}
SCHEDULER_TZ=${SCHEDULER_TZ:-Etc/UTC}
GMP_SIDECAR=${GMP_SIDECAR:-us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:1.2.0}
DASHBOARDS=${DASHBOARDS:-$(dirname "$0")/../dashboards/cloud-monitoring}
MAX_DELIVERY_ATTEMPTS=${MAX_DELIVERY_ATTEMPTS:-10}
# The watchdog: Cloud Monitoring notification channels (ids or full names, space separated)
# told when phasewatch itself is down, not judging, not delivering or refusing events. Use a
# path of their own (email, a PagerDuty service of Cloud Monitoring's integration), never
# phasewatch's own Slack webhook or routing key: a dead delivery path cannot report itself.
WATCHDOG_CHANNELS=${WATCHDOG_CHANNELS:-}
WATCHDOG_REGIONS=${WATCHDOG_REGIONS:-usa-iowa,usa-oregon,usa-virginia}  # uptime check: 3 or more
WATCHDOG=${WATCHDOG:-$(dirname "$0")/watchdog}  # the alert policies, filled in below
# The periodic jobs behind POST /v1/jobs/{name} and how often Cloud Scheduler calls them.
# `serve` also runs them itself every server.tick_interval_s (CPU stays allocated: see
# below); these calls are the backstop. An unknown name answers 404 listing the real ones.
JOBS=${JOBS:-"slo=*/5 * * * *;actuator-health=* * * * *;actuator=* * * * *;actuator-watch=* * * * *;actuator-drift=0 * * * *;correlate-failures=* * * * *;deliver-alerts=* * * * *;daily-health-check=*/15 * * * *;expectations=*/5 * * * *;checks=* * * * *;scheduler-outcomes=* * * * *;playbooks=* * * * *;prune=17 * * * *;snapshot=*/15 * * * *"}

RUN_SA="phasewatch-run@$PROJECT.iam.gserviceaccount.com"
PUSH_SA="phasewatch-push@$PROJECT.iam.gserviceaccount.com"
SCHEDULER_SA="phasewatch-scheduler@$PROJECT.iam.gserviceaccount.com"
DEAD_LETTER_TOPIC=phasewatch-dead-letter
OUTCOMES_TOPIC=phasewatch-scheduler-outcomes

exec 3>&1  # DRY_RUN prints here, past the >/dev/null that quiets IAM policy output
run() {  # run a command, or print it with DRY_RUN=1
  if [ "${DRY_RUN:-0}" = 1 ]; then printf '%q ' "$@" >&3; printf '\n' >&3; else "$@"; fi
}
exists() {  # whether a describe command succeeds (always false with DRY_RUN=1: print every create)
  [ "${DRY_RUN:-0}" != 1 ] && "$@" >/dev/null 2>&1
}
g() { run gcloud --project "$PROJECT" --quiet "$@"; }
gexists() { exists gcloud --project "$PROJECT" --quiet "$@"; }

step() { printf '== %s\n' "$*" >&2; }

scratch=$(mktemp -d)  # files handed to gcloud (the database URL among them), removed at exit
trap 'rm -rf "$scratch"' EXIT

step "APIs"
g services enable run.googleapis.com sqladmin.googleapis.com pubsub.googleapis.com \
  cloudscheduler.googleapis.com secretmanager.googleapis.com logging.googleapis.com \
  monitoring.googleapis.com cloudtrace.googleapis.com telemetry.googleapis.com

step "Service accounts: the service, Pub/Sub push, Cloud Scheduler"
for sa in phasewatch-run phasewatch-push phasewatch-scheduler; do
  gexists iam service-accounts describe "$sa@$PROJECT.iam.gserviceaccount.com" ||
    g iam service-accounts create "$sa" --display-name "phasewatch ($sa)"
done
for role in roles/cloudsql.client roles/monitoring.metricWriter roles/cloudtrace.agent \
            roles/logging.logWriter roles/pubsub.publisher roles/telemetry.tracesWriter; do
  g projects add-iam-policy-binding "$PROJECT" --member "serviceAccount:$RUN_SA" --role "$role" \
    --condition None >/dev/null
done

step "Cloud SQL for PostgreSQL: instance $SQL_INSTANCE, database $DB_NAME, user $DB_USER"
gexists sql instances describe "$SQL_INSTANCE" ||
  g sql instances create "$SQL_INSTANCE" --database-version POSTGRES_16 --tier "$SQL_TIER" \
    --region "$REGION" --availability-type REGIONAL --backup --enable-point-in-time-recovery
gexists sql databases describe "$DB_NAME" --instance "$SQL_INSTANCE" ||
  g sql databases create "$DB_NAME" --instance "$SQL_INSTANCE"
if ! gexists secrets describe phasewatch-db; then
  # The password exists only in the user and in the secret; PHASEWATCH_DB is read from it.
  password=$(if [ "${DRY_RUN:-0}" = 1 ]; then echo REDACTED; else openssl rand -hex 24; fi)
  g sql users create "$DB_USER" --instance "$SQL_INSTANCE" --password "$password"
  socket="/cloudsql/$PROJECT:$REGION:$SQL_INSTANCE"
  printf 'postgresql://%s:%s@/%s?host=%s' "$DB_USER" "$password" "$DB_NAME" "$socket" >"$scratch/db"
  g secrets create phasewatch-db --replication-policy automatic --data-file "$scratch/db"
fi

step "Secrets: the pipeline config, Slack, PagerDuty, the Prometheus sidecar's scrape config"
upsert_secret() {  # name file: a new version when the content changed
  if gexists secrets describe "$1"; then
    g secrets versions add "$1" --data-file "$2"
  else
    g secrets create "$1" --replication-policy automatic --data-file "$2"
  fi
}
upsert_secret phasewatch-config "$CONFIG"
for secret in phasewatch-slack-webhook phasewatch-pagerduty-routing-key; do
  # Created empty once; add the real value with `gcloud secrets versions add NAME --data-file -`.
  printf 'unset' >"$scratch/unset"
  gexists secrets describe "$secret" ||
    g secrets create "$secret" --replication-policy automatic --data-file "$scratch/unset"
done
gmp_config=$scratch/gmp-config.yaml
cat >"$gmp_config" <<'YAML'
# RunMonitoring for run-gmp-sidecar: scrape phasewatch's /metrics on the loopback.
apiVersion: monitoring.googleapis.com/v1beta
kind: RunMonitoring
metadata:
  name: phasewatch
spec:
  endpoints:
  - port: 8080
    path: /metrics
    interval: 30s
YAML
upsert_secret phasewatch-gmp-config "$gmp_config"
for secret in phasewatch-db phasewatch-config phasewatch-slack-webhook \
              phasewatch-pagerduty-routing-key phasewatch-gmp-config; do
  g secrets add-iam-policy-binding "$secret" --member "serviceAccount:$RUN_SA" \
    --role roles/secretmanager.secretAccessor >/dev/null
done

step "Cloud Run: phasewatch and the Managed Prometheus sidecar, behind IAM"
# Multi-container services are declared in a service YAML (Knative serving v1). The app waits
# for nothing; the collector starts after it (container-dependencies). CPU stays allocated
# so `serve` runs its own scheduler loop between requests; min-scale 1 keeps one warm.
service_yaml=${SERVICE_YAML:-$CONFIG.cloudrun.yaml}  # kept: the service as deployed
cat >"$service_yaml" <<YAML
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: $SERVICE
  labels:
    cloud.googleapis.com/location: $REGION
  annotations:
    run.googleapis.com/ingress: all
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/minScale: "1"
        autoscaling.knative.dev/maxScale: "4"
        run.googleapis.com/cpu-throttling: "false"
        run.googleapis.com/execution-environment: gen2
        run.googleapis.com/cloudsql-instances: $PROJECT:$REGION:$SQL_INSTANCE
        run.googleapis.com/container-dependencies: '{"collector":["app"]}'
    spec:
      serviceAccountName: $RUN_SA
      containers:
      - name: app
        image: $IMAGE
        command: [phasewatch]
        args: [serve, --host, 0.0.0.0, --config, /etc/phasewatch/pipeline.yaml]
        ports:
        - containerPort: 8080
        env:
        - {name: PHASEWATCH_LOG_FORMAT, value: json}
        - {name: GOOGLE_CLOUD_PROJECT, value: $PROJECT}
        - {name: OTEL_TRACES_EXPORTER, value: gcp_trace}
        - name: PHASEWATCH_DB
          valueFrom: {secretKeyRef: {name: phasewatch-db, key: latest}}
        - name: $SLACK_ENV
          valueFrom: {secretKeyRef: {name: phasewatch-slack-webhook, key: latest}}
        - name: $PAGERDUTY_ENV
          valueFrom: {secretKeyRef: {name: phasewatch-pagerduty-routing-key, key: latest}}
        volumeMounts:
        - {name: config, mountPath: /etc/phasewatch}
        startupProbe:
          httpGet: {path: /health, port: 8080}
          periodSeconds: 2
          failureThreshold: 30
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          periodSeconds: 30
      - name: collector
        image: $GMP_SIDECAR
        volumeMounts:
        - {name: gmp-config, mountPath: /etc/rungmp}
      volumes:
      - name: config
        secret:
          secretName: phasewatch-config
          items: [{key: latest, path: pipeline.yaml}]
      - name: gmp-config
        secret:
          secretName: phasewatch-gmp-config
          items: [{key: latest, path: config.yaml}]
YAML
g run services replace "$service_yaml" --region "$REGION"
if [ "${DRY_RUN:-0}" = 1 ]; then
  url="https://$SERVICE-PROJECT_HASH.$REGION.run.app"
else
  url=$(gcloud --project "$PROJECT" run services describe "$SERVICE" --region "$REGION" --format 'value(status.url)')
fi
for sa in "$PUSH_SA" "$SCHEDULER_SA"; do
  g run services add-iam-policy-binding "$SERVICE" --region "$REGION" \
    --member "serviceAccount:$sa" --role roles/run.invoker >/dev/null
done

step "Pub/Sub: push subscriptions with OIDC and a dead-letter topic"
project_number=$(if [ "${DRY_RUN:-0}" = 1 ]; then echo PROJECT_NUMBER; else
  gcloud projects describe "$PROJECT" --format 'value(projectNumber)'; fi)
pubsub_agent="serviceAccount:service-$project_number@gcp-sa-pubsub.iam.gserviceaccount.com"
# Pub/Sub mints the push tokens as PUSH_SA, and moves undeliverable messages to the
# dead-letter topic, whose own subscription keeps them (7 days) for a look and a replay.
g iam service-accounts add-iam-policy-binding "$PUSH_SA" --member "$pubsub_agent" \
  --role roles/iam.serviceAccountTokenCreator >/dev/null
gexists pubsub topics describe "$DEAD_LETTER_TOPIC" || g pubsub topics create "$DEAD_LETTER_TOPIC"
gexists pubsub subscriptions describe "$DEAD_LETTER_TOPIC-keep" ||
  g pubsub subscriptions create "$DEAD_LETTER_TOPIC-keep" --topic "$DEAD_LETTER_TOPIC" \
    --message-retention-duration 7d --expiration-period never
g pubsub topics add-iam-policy-binding "$DEAD_LETTER_TOPIC" --member "$pubsub_agent" \
  --role roles/pubsub.publisher >/dev/null
push_subscription() {  # topic name: a push subscription to /v1/pubsub/push
  local name=$2
  local flags=(--push-endpoint "$url/v1/pubsub/push" --push-auth-service-account "$PUSH_SA"
               --push-auth-token-audience "$url/v1/pubsub/push"
               --dead-letter-topic "$DEAD_LETTER_TOPIC" --max-delivery-attempts "$MAX_DELIVERY_ATTEMPTS"
               --min-retry-delay 10s --max-retry-delay 600s --ack-deadline 60)
  if gexists pubsub subscriptions describe "$name"; then
    g pubsub subscriptions update "$name" "${flags[@]}"
  else
    g pubsub subscriptions create "$name" --topic "$1" --message-retention-duration 7d "${flags[@]}"
  fi
  g pubsub subscriptions add-iam-policy-binding "$name" --member "$pubsub_agent" \
    --role roles/pubsub.subscriber >/dev/null
}
for topic in $TOPICS; do
  push_subscription "$topic" "$topic-phasewatch"
done

step "Cloud Scheduler's outcomes: a log sink to Pub/Sub, pushed to phasewatch"
gexists pubsub topics describe "$OUTCOMES_TOPIC" || g pubsub topics create "$OUTCOMES_TOPIC"
# The attempts, and a person pausing, resuming, rescheduling, creating or deleting a job
# (monitor/scheduler/logentry.py SINK_FILTER).
filter='resource.type="cloud_scheduler_job" AND (jsonPayload.@type="type.googleapis.com/google.cloud.scheduler.logging.AttemptFinished" OR protoPayload.methodName=("google.cloud.scheduler.v1.CloudScheduler.PauseJob" OR "google.cloud.scheduler.v1.CloudScheduler.ResumeJob" OR "google.cloud.scheduler.v1.CloudScheduler.UpdateJob" OR "google.cloud.scheduler.v1.CloudScheduler.CreateJob" OR "google.cloud.scheduler.v1.CloudScheduler.DeleteJob"))'
if gexists logging sinks describe phasewatch-scheduler-outcomes; then
  g logging sinks update phasewatch-scheduler-outcomes \
    "pubsub.googleapis.com/projects/$PROJECT/topics/$OUTCOMES_TOPIC" --log-filter "$filter"
else
  g logging sinks create phasewatch-scheduler-outcomes \
    "pubsub.googleapis.com/projects/$PROJECT/topics/$OUTCOMES_TOPIC" --log-filter "$filter"
fi
writer=$(if [ "${DRY_RUN:-0}" = 1 ]; then echo serviceAccount:SINK_WRITER; else
  gcloud --project "$PROJECT" logging sinks describe phasewatch-scheduler-outcomes --format 'value(writerIdentity)'; fi)
g pubsub topics add-iam-policy-binding "$OUTCOMES_TOPIC" --member "$writer" \
  --role roles/pubsub.publisher >/dev/null
push_subscription "$OUTCOMES_TOPIC" "$OUTCOMES_TOPIC-push"

step "Cloud Scheduler: POST /v1/jobs/{name} with an OIDC token"
IFS=';' read -r -a job_specs <<<"$JOBS"
for spec in "${job_specs[@]}"; do
  job=${spec%%=*}
  schedule=${spec#*=}
  flags=(--location "$REGION" --schedule "$schedule" --time-zone "$SCHEDULER_TZ"
         --uri "$url/v1/jobs/$job" --http-method POST
         --oidc-service-account-email "$SCHEDULER_SA" --oidc-token-audience "$url"
         --attempt-deadline 300s --max-retry-attempts 3)
  if gexists scheduler jobs describe "phasewatch-$job" --location "$REGION"; then
    g scheduler jobs update http "phasewatch-$job" "${flags[@]}"
  else
    g scheduler jobs create http "phasewatch-$job" "${flags[@]}"
  fi
done

step "Dashboards: every dashboards/cloud-monitoring/*.json"
shopt -s nullglob
dashboards=("$DASHBOARDS"/*.json)
[ ${#dashboards[@]} -gt 0 ] || echo "no dashboards in $DASHBOARDS (phasewatch dashboards build writes them)" >&2
for file in "${dashboards[@]}"; do
  title=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["displayName"])' "$file")
  existing=$(if [ "${DRY_RUN:-0}" = 1 ]; then echo; else
    gcloud --project "$PROJECT" monitoring dashboards list --filter "displayName=\"$title\"" --format 'value(name)'; fi)
  if [ -n "$existing" ]; then
    # update needs the stored etag: the file's content with the current dashboard's name and etag
    etag=$(gcloud --project "$PROJECT" monitoring dashboards describe "$existing" --format 'value(etag)')
    updated=$scratch/dashboard.json
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); d["etag"] = sys.argv[2]; print(json.dumps(d))' \
      "$file" "$etag" >"$updated"
    g monitoring dashboards update "$existing" --config-from-file "$updated"
  else
    g monitoring dashboards create --config-from-file "$file"
  fi
done

step "Watchdog: Cloud Monitoring watches phasewatch itself, apart from phasewatch's alerting"
# An uptime check of /health from several regions, authenticated as the Monitoring service
# agent (OIDC), and alert policies on it, on phasewatch's own metrics (Managed Prometheus)
# and on the dead-letter subscription. docs/deploy.md#who-watches-phasewatch
uptime_title="$SERVICE /health (phasewatch watchdog)"
uptime_flags=(--path /health --service-agent-auth oidc-token --period 1 --timeout 10)
check=$(if [ "${DRY_RUN:-0}" = 1 ]; then echo; else
  gcloud --project "$PROJECT" monitoring uptime list-configs --filter "displayName=\"$uptime_title\"" --format 'value(name)'; fi)
if [ -n "$check" ]; then
  g monitoring uptime update "${check##*/}" "${uptime_flags[@]}" --set-regions "$WATCHDOG_REGIONS"
else
  check=$(g monitoring uptime create "$uptime_title" --resource-type uptime-url \
    --resource-labels "host=${url#https://},project_id=$PROJECT" --protocol https \
    "${uptime_flags[@]}" --regions "$WATCHDOG_REGIONS" --format 'value(name)')
fi
check_id=$(if [ "${DRY_RUN:-0}" = 1 ]; then echo UPTIME_CHECK_ID; else echo "${check##*/}"; fi)
[ -n "$check_id" ] || { echo "error: no id for the uptime check \"$uptime_title\"" >&2; exit 1; }
# The Monitoring service agent is created on first use: bound once the check exists.
g run services add-iam-policy-binding "$SERVICE" --region "$REGION" \
  --member "serviceAccount:service-$project_number@gcp-sa-monitoring-notification.iam.gserviceaccount.com" \
  --role roles/run.invoker >/dev/null
[ -n "$WATCHDOG_CHANNELS" ] || echo "warning: WATCHDOG_CHANNELS is empty: the watchdog's policies" \
  "notify nobody until you set it to Cloud Monitoring notification channel ids and run this again" >&2
watchdog_out=${WATCHDOG_OUT:-$CONFIG.watchdog}  # kept: the policies as deployed
mkdir -p "$watchdog_out"
for template in "$WATCHDOG"/*.json; do
  policy=$watchdog_out/$(basename "$template")
  # ${PROJECT}, ${REGION}, ${SERVICE}, ${UPTIME_CHECK_ID}, ${DEAD_LETTER_TOPIC} filled in (a
  # missing one stops here), and the channels attached as full names.
  PROJECT=$PROJECT REGION=$REGION SERVICE=$SERVICE UPTIME_CHECK_ID=$check_id \
  DEAD_LETTER_TOPIC=$DEAD_LETTER_TOPIC WATCHDOG_CHANNELS=$WATCHDOG_CHANNELS python3 -c '
import json, os, string, sys
policy = json.loads(string.Template(open(sys.argv[1]).read()).substitute(os.environ))
prefix = "projects/%s/notificationChannels/" % os.environ["PROJECT"]
policy["notificationChannels"] = [c if "/" in c else prefix + c for c in os.environ["WATCHDOG_CHANNELS"].split()]
json.dump(policy, sys.stdout, indent=2)' "$template" >"$policy"
  title=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["displayName"])' "$policy")
  existing=$(if [ "${DRY_RUN:-0}" = 1 ]; then echo; else
    gcloud --project "$PROJECT" alpha monitoring policies list --filter "displayName=\"$title\"" --format 'value(name)'; fi)
  if [ -n "$existing" ]; then  # replaced by the file: conditions, documentation and channels
    g alpha monitoring policies update "$existing" --policy-from-file "$policy"
  else
    g alpha monitoring policies create --policy-from-file "$policy"
  fi
done

step "Done: $url (behind IAM: gcloud run services proxy $SERVICE --region $REGION)"
