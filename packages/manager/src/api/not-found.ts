// The original answered GET /v1/vms/:id and /exec-logs with "VM not found" and every other VM
// route with "VM <id> not found"; its clients may match either sentence.
import { Errors, recode } from '../errors.ts'

export const shortVmNotFound = <T>(p: Promise<T>): Promise<T> => recode(p, 'vm_not_found', () => Errors.vmNotFound())
