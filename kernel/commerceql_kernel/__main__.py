"""`python -m commerceql_kernel -f CONNECTION_FILE`: start the CommerceQL kernel."""

from ipykernel.kernelapp import IPKernelApp

from commerceql_kernel.kernel import CommerceQLKernel

if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=CommerceQLKernel)
