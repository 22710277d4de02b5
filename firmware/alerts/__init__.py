"""E-mail alerts: composing (``compose``), sending over SMTP with STARTTLS (``mailer``). The service is
``firmware.services.email``; docs/email.md."""
