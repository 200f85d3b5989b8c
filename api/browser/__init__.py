"""What vaxvault shows in a browser: GraphiQL (development only) and the admin console, both from
files it serves itself with a strict Content-Security-Policy (no CDN, no inline script)."""
