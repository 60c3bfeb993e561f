"""Where bytes meet transports: the Twisted protocols, the streaming pipe and TLS glue."""
