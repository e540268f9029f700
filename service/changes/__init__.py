"""Change capture: every change of the sessions table, from its DynamoDB Stream, applied
to the cached aggregates, whatever happened to the process that wrote it (README,
"Change capture"). A Lambda function reads the stream in production
(``lambda_handler``); local mode and the tests poll it (``poller``)."""
