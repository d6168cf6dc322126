"""The CommerceQL Jupyter kernel: run CommerceQL queries in notebooks.

Install the kernel spec with `commerceql kernel install [--user | --sys-prefix]`; JupyterLab then
lists "CommerceQL" in its launcher. The kernel itself is `commerceql_kernel.kernel.CommerceQLKernel`,
started with `python -m commerceql_kernel -f CONNECTION_FILE`.
"""

__version__ = "0.1.0"
