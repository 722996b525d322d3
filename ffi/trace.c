// SPDX-License-Identifier: GPL-2.0
/*
 * vfio_pci_rs observability: the trace events of ffi/trace.h and the dynamic-debug messages
 * telling why a bind, an open or an mmap was refused (Rust's dev_dbg! is compiled out without
 * debug assertions, so these go through one C dev_dbg call site each:
 *   echo 'module vfio_pci_rs +p' > /sys/kernel/debug/dynamic_debug/control).
 */
#include <linux/device.h>
#include <linux/mm.h>
#include <linux/vfio.h>
#include "shim.h"

#define CREATE_TRACE_POINTS
#include "trace.h"

static void vpr_trace_fault(struct vm_fault *vmf, unsigned int order, vm_fault_t ret)
{
	struct vfio_device *vdev = vmf->vma->vm_private_data;

	trace_vpr_fault(vdev->dev, vmf->address, vmf->vma->vm_pgoff, order, ret);
}

vm_fault_t vpr_fault_traced(struct vm_fault *vmf)
{
	vm_fault_t ret = vpr_page_fault(vmf);

	vpr_trace_fault(vmf, 0, ret);
	return ret;
}

vm_fault_t vpr_huge_fault_traced(struct vm_fault *vmf, unsigned int order)
{
	vm_fault_t ret = vpr_huge_fault(vmf, order);

	vpr_trace_fault(vmf, order, ret);
	return ret;
}

void vpr_zap_mapping(struct vfio_device *vdev, u64 start, u64 len)
{
	unmap_mapping_range(vdev->inode->i_mapping, start, len, true);
	trace_vpr_zap(vdev->dev, start, len);
}

int vpr_refused(struct device *dev, const char *op, int err)
{
	dev_dbg(dev, "%s refused: %d\n", op, err);
	trace_vpr_refused(dev, op, err, "");
	return err;
}

int vpr_mmap_refused(struct vfio_device *vdev, unsigned long pgoff, unsigned long len,
		     bool shared, int err)
{
	char detail[96];

	snprintf(detail, sizeof(detail), "(region %lu, offset %#lx, size %#lx%s)",
		 VPR_TRACE_INDEX(pgoff), (pgoff << PAGE_SHIFT) & ((1UL << 40) - 1), len,
		 shared ? "" : ", not MAP_SHARED");
	dev_dbg(vdev->dev, "mmap refused: %d %s\n", err, detail);
	trace_vpr_refused(vdev->dev, "mmap", err, detail);
	return err;
}
