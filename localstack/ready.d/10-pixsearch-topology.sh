#!/usr/bin/env bash
# LocalStack ready.d hook: creates the pixsearch topology (bucket, stage queues with their
# dead-letter queues, S3 -> SQS notifications). It states the values of
# pixsearch/topology.py and infra/template.yaml; tests/functional/deploy checks they agree.
set -euo pipefail

BUCKET="${PIXSEARCH_BUCKET:-pixsearch}"
PREFIX="${PIXSEARCH_QUEUE_PREFIX:-pixsearch-}"

declare -A QUEUE_ARN

queue_arn() {
  awslocal sqs get-queue-attributes --queue-url "$1" --attribute-names QueueArn \
    --query Attributes.QueueArn --output text
}

# create_stage NAME VISIBILITY_TIMEOUT_S MAX_RECEIVE_COUNT
create_stage() {
  local name=$1 visibility=$2 max_receive=$3
  local dlq_url dlq_arn redrive
  dlq_url=$(awslocal sqs create-queue --queue-name "${PREFIX}${name}-dlq" \
    --attributes MessageRetentionPeriod=1209600 --query QueueUrl --output text)
  dlq_arn=$(queue_arn "$dlq_url")
  redrive=$(printf '{"deadLetterTargetArn":"%s","maxReceiveCount":"%s"}' "$dlq_arn" "$max_receive")
  awslocal sqs create-queue --queue-name "${PREFIX}${name}" \
    --attributes "$(printf '{"VisibilityTimeout":"%s","RedrivePolicy":"%s"}' \
      "$visibility" "${redrive//\"/\\\"}")" >/dev/null
  # Same account, region and name less the suffix as its dead-letter queue.
  QUEUE_ARN[$name]=${dlq_arn%-dlq}
}

awslocal s3api head-bucket --bucket "$BUCKET" 2>/dev/null \
  || awslocal s3api create-bucket --bucket "$BUCKET" >/dev/null

create_stage download 5400 5
create_stage embed 5400 5
create_stage index 1800 5

awslocal s3api put-bucket-notification-configuration --bucket "$BUCKET" \
  --notification-configuration "$(cat <<JSON
{
  "QueueConfigurations": [
    {
      "Id": "download-0",
      "QueueArn": "${QUEUE_ARN[download]}",
      "Events": ["s3:ObjectCreated:*"],
      "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "urls/"}]}}
    },
    {
      "Id": "embed-0",
      "QueueArn": "${QUEUE_ARN[embed]}",
      "Events": ["s3:ObjectCreated:*"],
      "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "images/"}]}}
    },
    {
      "Id": "index-0",
      "QueueArn": "${QUEUE_ARN[index]}",
      "Events": ["s3:ObjectCreated:*"],
      "Filter": {"Key": {"FilterRules": [
        {"Name": "prefix", "Value": "embeddings/"},
        {"Name": "suffix", "Value": ".npy"}
      ]}}
    },
    {
      "Id": "index-1",
      "QueueArn": "${QUEUE_ARN[index]}",
      "Events": ["s3:ObjectRemoved:*"],
      "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "images/"}]}}
    }
  ]
}
JSON
)"

echo "pixsearch topology ready: bucket ${BUCKET}, queues ${PREFIX}{download,embed,index}"
