"""Identity: principals, credentials and the authentication methods (basic, OIDC, Keystone, X.509)."""
