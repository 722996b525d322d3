/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vfio_pci_rs trace events (/sys/kernel/tracing/events/<module>/: vfio_pci_rs, or vfio_pci for
 * the drop-in build): BAR faults, zaps of every BAR mapping, and refused binds, opens and mmaps
 * with their errno. Off by default; a disabled tracepoint costs a patched-out branch. The system
 * is named after the module, as the debugfs directory, so both builds can be loaded at once.
 */
#undef TRACE_SYSTEM
#ifdef VPR_DROPIN
#define TRACE_SYSTEM vfio_pci
#else
#define TRACE_SYSTEM vfio_pci_rs
#endif

#if !defined(VPR_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define VPR_TRACE_H

#include <linux/device.h>
#include <linux/mm_types.h>
#include <linux/tracepoint.h>

/* Region index of a file offset in pages (VFIO_PCI_OFFSET_SHIFT is 40). */
#define VPR_TRACE_INDEX(pgoff) ((pgoff) >> (40 - PAGE_SHIFT))

TRACE_EVENT(vpr_fault,
	TP_PROTO(struct device *dev, unsigned long address, unsigned long pgoff,
		 unsigned int order, vm_fault_t ret),
	TP_ARGS(dev, address, pgoff, order, ret),
	TP_STRUCT__entry(
		__string(dev, dev_name(dev))
		__field(unsigned long, address)
		__field(unsigned long, pgoff)
		__field(unsigned int, order)
		__field(unsigned int, ret)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->address = address;
		__entry->pgoff = pgoff;
		__entry->order = order;
		__entry->ret = ret;
	),
	TP_printk("%s bar=%lu addr=%#lx order=%u ret=%s", __get_str(dev),
		  VPR_TRACE_INDEX(__entry->pgoff), __entry->address, __entry->order,
		  __print_flags(__entry->ret, "|", VM_FAULT_RESULT_TRACE))
);

TRACE_EVENT(vpr_zap,
	TP_PROTO(struct device *dev, u64 start, u64 len),
	TP_ARGS(dev, start, len),
	TP_STRUCT__entry(
		__string(dev, dev_name(dev))
		__field(u64, start)
		__field(u64, len)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->start = start;
		__entry->len = len;
	),
	TP_printk("%s zapped user mappings of file offsets %#llx+%#llx", __get_str(dev),
		  __entry->start, __entry->len)
);

TRACE_EVENT(vpr_refused,
	TP_PROTO(struct device *dev, const char *op, int err, const char *detail),
	TP_ARGS(dev, op, err, detail),
	TP_STRUCT__entry(
		__string(dev, dev_name(dev))
		__string(op, op)
		__field(int, err)
		__string(detail, detail)
	),
	TP_fast_assign(
		__assign_str(dev);
		__assign_str(op);
		__entry->err = err;
		__assign_str(detail);
	),
	TP_printk("%s %s refused: %d %s", __get_str(dev), __get_str(op), __entry->err,
		  __get_str(detail))
);

#endif /* VPR_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
