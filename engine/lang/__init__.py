"""The rule language's front end: YAML with positions → validated documents → static checks →
the loaded model (:class:`engine.lang.model.RuleSet`), or every problem found, with its place."""
