"""Generates CareConnect's WebSocket CloudFormation templates with troposphere and awacs.

Pure: builds plain template data, never calls AWS. `python -m generator` writes templates_out/.
"""
