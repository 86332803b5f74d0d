// The original answered GET /v1/vms/:id and /exec-logs with "VM not found" and every other VM
// route with "VM <id> not found"; its clients may match either sentence.
import { ApiError, Errors } from '../errors.ts'

export async function withShortVmNotFound<T>(p: Promise<T>): Promise<T> {
  try {
    return await p
  } catch (err) {
    if (err instanceof ApiError && err.code === 'vm_not_found') throw Errors.vmNotFound()
    throw err
  }
}
