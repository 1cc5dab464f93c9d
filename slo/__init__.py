"""phasewatch slo: SLO specs, SLIs, error budgets, burn rates and anomaly detection."""
