"""Installs twisted_mitm and its twistd plugin."""

from setuptools import find_packages, setup

setup(
    name="twisted_mitm",
    version="0.1.0",
    description="An intercepting HTTP/HTTPS/WebSocket proxy on Twisted that streams bodies of any size",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["twisted_mitm", "twisted_mitm.*"]) + ["twisted.plugins"],
    package_data={"twisted": ["plugins/twisted_mitm_plugin.py"]},
    install_requires=[
        "Twisted>=24.7",
        "pyOpenSSL>=24.0",
        "service_identity>=24.1",
        "zope.interface>=6.0",
        "autobahn>=24.4",
        "brotli>=1.1",
        "zstandard>=0.22",
        "h2>=4.1",
        "bcrypt>=4.1",
    ],
    entry_points={"console_scripts": ["twisted-mitm = twisted_mitm.__main__:main"]},
)
