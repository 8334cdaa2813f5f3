// The permission gate's second evaluator: @cloud-copilot/iam-simulate decides each request.
// stdin: {"policySets": {name: [policy documents]}, "requests": [{set, principal, action,
// resource, context, resourcePolicy?}]}; stdout: one decision per request, in order, as
// {"result": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied" | "error", "detail"?, "unvalidated"?}.
// Where iam-data lists no resource type for the action and ARN (API Gateway V2's /apis/{id}/routes
// and others: its tables hold the REST API types), the request is decided by runUnsafeSimulation,
// the same evaluation without that validation, and marked unvalidated.
import { runSimulation, runUnsafeSimulation } from '@cloud-copilot/iam-simulate'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'))
const decisions = []
for (const request of input.requests) {
  const identityPolicies = input.policySets[request.set].map((policy, i) => ({ name: `${request.set}-${i}`, policy }))
  const simulation = {
      identityPolicies,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy: request.resourcePolicy,
      request: {
        principal: request.principal,
        action: request.action,
        resource: { resource: request.resource, accountId: request.account },
        contextVariables: request.context,
      },
    }
  const response = await runSimulation(simulation, {})
  if (response.resultType === 'error' && response.errors.message === 'no.resource.types') {
    decisions.push({ result: runUnsafeSimulation(simulation, {}), unvalidated: true })
  } else if (response.resultType === 'error') {
    decisions.push({ result: 'error', detail: JSON.stringify(response.errors) })
  } else {
    decisions.push({ result: response.overallResult })
  }
}
process.stdout.write(JSON.stringify(decisions))
