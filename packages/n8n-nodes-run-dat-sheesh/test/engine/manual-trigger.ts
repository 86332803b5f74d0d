// The workflow's start: the same contract as n8n-nodes-base's Manual Trigger (a trigger whose
// manualTriggerFunction emits one empty item), written here because n8n-nodes-base cannot be
// installed on this host (it builds native modules such as Kafka's from source). n8n-core's own
// trigger path runs it, exactly as it runs the real one on a manual execution.
import type { INodeType, INodeTypeDescription, ITriggerFunctions, ITriggerResponse } from 'n8n-workflow'

export const MANUAL_TRIGGER_TYPE = 'n8n-nodes-base.manualTrigger'

export class ManualTrigger implements INodeType {
  description: INodeTypeDescription = {
    displayName: 'Manual Trigger',
    name: 'manualTrigger',
    group: ['trigger'],
    version: 1,
    description: 'Runs the flow when it is executed by hand',
    defaults: { name: 'When clicking "Execute workflow"' },
    inputs: [],
    outputs: ['main'],
    properties: [],
  }

  async trigger(this: ITriggerFunctions): Promise<ITriggerResponse> {
    return {
      manualTriggerFunction: async () => {
        this.emit([this.helpers.returnJsonArray([{}])])
      },
    }
  }
}
