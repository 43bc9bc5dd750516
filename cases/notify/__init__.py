"""Push alerts (企业微信 / 钉钉 / e-mail) and the scheduler that runs the sweep and the reminders."""
