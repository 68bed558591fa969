"""General-purpose modules, retry policies, lifecycle logging, progress, profiles and the demo."""
