"""Everything that knows GitHub Actions: the environment and event file, step outputs, the job
summary, the REST client, the comment posters, dispatch, pull requests, and the one glue
`python -m mlci.gha <action>` that every action.yml runs."""
