"""Google Sign-In: certificates, ID-token verification, OpenID discovery and the web flow."""
