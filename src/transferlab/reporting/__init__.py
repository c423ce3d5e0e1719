"""What a report shows a stakeholder: the first screen's answer, styled tables, the "how this
was measured" box (tables, answer, measured, training, curves) and the browser that prints it
(chromium). report.py renders a run's notebook with them."""
