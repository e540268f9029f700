"""Who is asking: access tokens of the platform's identity provider (Amazon Cognito),
verified on every request, and the gateway's ``X-User-Id`` where it is trusted."""
