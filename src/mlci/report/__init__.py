"""The pull-request report: markdown from the files the stages wrote, and its posters."""
