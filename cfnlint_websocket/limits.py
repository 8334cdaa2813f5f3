"""AWS limits the rules check, as plain data (no cfn-lint import): the emulator enforces the same."""

# What a Rules condition or assertion may use (CloudFormation "Rules syntax"); anything else,
# Fn::Join, Fn::Sub and Fn::If among them, makes CloudFormation refuse the template.
RULE_FUNCTIONS = frozenset({
    "Fn::And", "Fn::Contains", "Fn::EachMemberEquals", "Fn::EachMemberIn", "Fn::Equals",
    "Fn::Not", "Fn::Or", "Fn::RefAll", "Fn::ValueOf", "Fn::ValueOfAll", "Ref",
})  # fmt: skip
TEMPLATE_BODY_LIMIT = 51_200  # bytes a template may have as TemplateBody
TEMPLATE_URL_LIMIT = 1_048_576  # bytes a template may have by TemplateURL (S3)
