"""Text shared by the act tests: the hostile string and the step that saves what they check."""

INJECTION = '"; touch /tmp/pwned #'

# Appended to a job of a user workflow: copies the outputs of every step and the .mlci folder
# out of act's throw-away workspace (`save_step("comment")` writes outputs-comment.json, for a
# second job of the same run).
SAVE_STEP = """
      - name: Save what the test checks
        if: ${{ always() }}
        shell: bash
        env:
          OUTS: ${{ toJSON(steps) }}
        run: |
          set -euo pipefail
          mkdir -p "$MLCI_E2E_DIR/saved"
          cp -r .mlci/. "$MLCI_E2E_DIR/saved/" 2>/dev/null || true
          printf '%s' "$OUTS" > "$MLCI_E2E_DIR/outputs.json"
"""


def save_step(job: str) -> str:
    return SAVE_STEP.replace("outputs.json", f"outputs-{job}.json").replace(
        "Save what the test checks", f"Save what the test checks ({job})")


def after_job(job: str) -> str:
    """A job appended to a user workflow that keeps `needs.<job>` (its result and outputs) as
    outputs.json: the outputs of a called reusable workflow reach only a job after it."""
    return f"""
  after:
    needs: {job}
    if: ${{{{ always() }}}}
    runs-on: ubuntu-latest
    timeout-minutes: 5
    steps:
      - shell: bash
        env:
          OUTS: ${{{{ toJSON(needs.{job}) }}}}
        run: |
          set -euo pipefail
          printf '%s' "$OUTS" > "$MLCI_E2E_DIR/outputs.json"
"""
