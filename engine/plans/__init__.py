"""Success plans: templates, one-page plan instances, key results, milestones and revisions."""
