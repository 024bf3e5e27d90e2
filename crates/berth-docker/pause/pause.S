# berth's pause process: the awsvpc pause container's only program. It holds the task's
# network namespace and does nothing else: it waits for signals, and exits 0 on SIGTERM or
# SIGINT (as PID 1 it must install handlers, or the kernel ignores those signals).
# Built with binutils on x86_64 Linux; the bytes are embedded in pause.rs:
#   as --64 -o pause.o pause.S && ld -static -n -s -o pause pause.o
        .globl _start
        .text
_start:
        mov     $15, %edi               # SIGTERM
        call    install
        mov     $2, %edi                # SIGINT
        call    install
wait:
        mov     $34, %eax               # pause()
        syscall
        jmp     wait
install:
        lea     action(%rip), %rsi      # rt_sigaction(sig, &action, NULL, 8)
        xor     %edx, %edx
        mov     $8, %r10d
        mov     $13, %eax
        syscall
        ret
quit:
        xor     %edi, %edi              # exit(0)
        mov     $60, %eax
        syscall
restore:
        mov     $15, %eax               # rt_sigreturn (never reached: quit exits)
        syscall
        .data
        .balign 8
action:
        .quad   quit                    # handler
        .quad   0x04000000              # SA_RESTORER
        .quad   restore                 # restorer
        .quad   0                       # mask
