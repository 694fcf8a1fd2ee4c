"""The local runtime: an embedded object store + queues, and a Lambda-style dispatcher."""
